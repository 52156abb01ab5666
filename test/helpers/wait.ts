// Tests wait on conditions, never for a fixed time: on a loaded 2-core
// machine anything can take ten times as long as on a quiet one, so a test
// polls until what it needs is true, within a limit generous enough that only
// a real failure reaches it (and then says what it was waiting for).

/**
 * Polls `check` until it returns something other than undefined/false, and
 * returns that. Throws `timed out after N ms waiting for <what>` at the limit.
 */
export async function until<T>(what: string, check: () => T | false | undefined | Promise<T | false | undefined>, opts: { timeoutMs?: number; intervalMs?: number } = {}): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 20));
  }
}
