/**
 * The designer script the chaos run calls through `script.run` on any game server: each function
 * makes one player call through `cproxyplayer` (the real SDK path: sandbox, bridge, PlayerCaller,
 * player.invoke wherever the player is) and answers what came of it instead of throwing, so the
 * runner sees the error kind the script saw.
 */
export const CHAOS_SCRIPT_NAME = 'chaos';

export const CHAOS_SCRIPT = `// Written by the chaos run (test/chaos/script.ts).
function failure(error: unknown) {
  const e = error as { kind?: unknown; name?: unknown; message?: unknown };
  return { ok: false, kind: String(e?.kind ?? ''), name: String(e?.name ?? ''), message: String(e?.message ?? error).slice(0, 300) };
}

export async function gold(pid: number, amount: number, reason: string) {
  try {
    return { ok: true, value: await cproxyplayer.new(pid).addgold(amount, reason) };
  } catch (error) {
    return failure(error);
  }
}

export async function item(pid: number, typeId: number, count: number, reason: string) {
  try {
    return { ok: true, value: await cproxyplayer.new(pid).itemdb.additembytype(typeId, count, null, reason) };
  } catch (error) {
    return failure(error);
  }
}
`;
