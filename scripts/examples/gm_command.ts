/**
 * GM commands on a player, wherever he is playing:
 *
 *   kuafu script run scripts/examples/gm_command.ts --on HS --args '[10001, "addgold 100"]'
 *
 * Commands: `info`, `addgold <amount>`, `setlevel <level>`, `give <type> <count>`,
 * `take <type> <count>`, `count <type>`.
 */
export async function main(pid: number, command: string) {
  const [name = '', ...words] = command.trim().split(/\s+/);
  const player = cproxyplayer.new(pid);
  const reason = `gm:${command.trim()}`;
  log.info(`GM ${pid}: ${command}`);

  switch (name) {
    case 'info': {
      const [info, profile] = await Promise.all([player.getinfo(), playermgr.getprofile(pid)]);
      return { info, profile };
    }
    case 'addgold':
      return { added: await player.addgold(int(words[0], 'amount'), reason), gold: await player.getgold() };
    case 'setlevel':
      return { level: await player.setlevel(int(words[0], 'level'), reason) };
    case 'give':
      return { count: await player.itemdb.additembytype(int(words[0], 'type'), int(words[1], 'count'), null, reason) };
    case 'take':
      return { count: await player.itemdb.removeitembytype(int(words[0], 'type'), int(words[1], 'count'), reason) };
    case 'count':
      return { count: await player.itemdb.getitemcount(int(words[0], 'type')) };
    default:
      throw new Error(`unknown GM command "${name}"; try: info, addgold <amount>, setlevel <level>, give <type> <count>, take <type> <count>, count <type>`);
  }
}

function int(word: string | undefined, what: string): number {
  const value = Number(word);
  if (word === undefined || !Number.isSafeInteger(value)) throw new Error(`the GM command needs a whole number for ${what}, got ${word ?? 'nothing'}`);
  return value;
}
