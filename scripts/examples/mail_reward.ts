/**
 * Cross-server mail reward: mails an event's reward to every winner, wherever each one is playing.
 *
 *   kuafu script run scripts/examples/mail_reward.ts --on HS --args '[[10001, 10002], "arena-s3"]'
 *
 * All mails are sent in the same tick, so the host sends them to each server as one batch. A winner
 * who is offline is not mailed: his pid comes back in `offline` so the event can retry at login.
 */
const REWARD_GOLD = 500;
const REWARD_ITEMS = [
  { type: 105001, count: 2 },
  { type: 205003, count: 1 },
];

export async function main(pids: number[], event: string) {
  const reason = `mail_reward:${event}`;
  const results = await Promise.allSettled(
    pids.map((pid) =>
      cproxyplayer.new(pid).mail.send(
        {
          title: `Reward: ${event}`,
          body: `Congratulations! Here is your reward for ${event}.`,
          gold: REWARD_GOLD,
          items: REWARD_ITEMS,
        },
        reason,
      ),
    ),
  );

  const sent: { pid: number; mail: number }[] = [];
  const offline: number[] = [];
  results.forEach((result, i) => {
    const pid = pids[i]!;
    if (result.status === 'fulfilled') sent.push({ pid, mail: result.value });
    else if ((result.reason as KuafuError).kind === 'PlayerOffline') offline.push(pid);
    else throw result.reason;
  });

  log.info(`${event}: mailed ${sent.length} winner(s); ${offline.length} offline`, offline);
  return { sent, offline };
}
