/**
 * Guild donation: a player gives gold to his guild, wherever he plays and wherever the guild's
 * server is. The treasury gets the gold itself, or wood bought with it (10 wood a gold):
 *
 *   kuafu script run scripts/examples/guild_donation.ts --on HS --args '[1000001, "wolves", 20, "don-1000001-1", "wood"]'
 *
 * The request id names the donation: the guild counts a deposit once per request id, so the same
 * donation sent again (a retry, a double click) changes nothing, and the gold taken for it is
 * given back. The guild's server checks and applies its deposits one at a time; no server decides
 * from a cached balance.
 */
const WOOD_PER_GOLD = 10;

export async function main(pid: number, gid: string, gold: number, requestId: string, resource: "gold" | "wood" = "gold") {
  if (!Number.isSafeInteger(gold) || gold <= 0) throw new Error(`a donation is a whole number of gold above 0, not ${gold}`);
  const player = cproxyplayer.new(pid);
  const guild = services.guild(gid);
  const reason = `guild_donation:${gid}:${requestId}`;
  const amount = resource === "wood" ? gold * WOOD_PER_GOLD : gold;

  // 1. The gold leaves the player (refused, kind InvalidArgument, when he has less).
  await player.addgold(-gold, reason);

  // 2. The treasury gets it, on the guild's server, once per request id.
  let receipt: TreasuryReceipt;
  try {
    receipt = await guild.deposit(resource, amount, `donation from ${pid}`, requestId);
  } catch (error) {
    const kind = (error as KuafuError).kind;
    if (kind === "Timeout" || kind === "ServerUnavailable") {
      // The deposit may have been applied: keep the gold taken, and let a GM look at the ledger.
      log.error(`donation ${requestId} of ${pid} to ${gid}: the guild server did not answer; ${gold} gold taken, deposit unknown`);
    } else {
      await player.addgold(gold, `${reason}:refund`); // refused (no such guild…): nothing was deposited
    }
    throw error;
  }

  // 3. Sent before: the guild counted it then, so this run's gold goes back.
  if (receipt.replayed) {
    await player.addgold(gold, `${reason}:already-donated`);
    log.info(`donation ${requestId} was made before; ${pid} keeps his gold`);
    return { donated: 0, resource, balance: receipt.balance, replayed: true };
  }

  log.info(`${pid} gave ${gold} gold to ${gid}: +${amount} ${resource}, now ${receipt.balance}`);
  return { donated: amount, resource, balance: receipt.balance, replayed: false };
}
