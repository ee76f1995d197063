export async function main(pid: number) {
  if (!(await playermgr.getkuafuplayer(pid))) return;   // online, on another server?
  const player = cproxyplayer.new(pid);
  await player.itemdb.additembytype(105001, 10, null, "test:rpc");
  const addgold = await player.addgold(10, "test:rpc");
  log.info(addgold);                                     // 10
  return addgold;
}
