// SIGTERM/SIGINT: drain the webhook work and the applies (within BERTH_DRAIN_TIMEOUT_MS), then exit.
import type { Services } from '../services.js';

export function onSignals({ log, env, runner, work, store, replica, drift }: Services): void {
  const shutdown = async (signal: string) => {
    log.info({ signal, inFlight: runner.inFlight() }, 'shutting down: draining webhook work and applies');
    const timeoutMs = Number(env.BERTH_DRAIN_TIMEOUT_MS ?? 30_000);
    const started = Date.now();
    const worked = await Promise.race([work.idle().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs).unref())]);
    if (!worked) {
      // Given back at once: the next start (or another replica) runs them without waiting for the claims to lapse.
      await store.releaseDeliveries(replica).catch(() => 0);
      log.warn({}, 'drain timed out: unfinished webhook work runs again at next start');
    }
    const drained = await runner.drain(Math.max(0, timeoutMs - (Date.now() - started)));
    if (!drained) log.warn({ inFlight: runner.inFlight() }, 'drain timed out: open applies stay recoverable at next start');
    await drift?.stop();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}
