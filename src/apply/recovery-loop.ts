// Applies a crash left open: re-check their running tasks, finish them, report as usual;
// and ended applies a crash left unreported: report them (once, across replicas).
// Again every interval: an apply whose dead driver still held its lease at start
// (or that a dead replica was driving) becomes ours once that lease expires.
// Each pass first resumes the webhook deliveries whose claim lapsed.
import type { Services } from '../services.js';

export function startRecoveryLoop({ log, env, executor, runner, services }: Services, resumeDeliveries: () => Promise<void>): void {
  let recovering = false;
  const recover = () => {
    if (recovering) return;
    recovering = true;
    void resumeDeliveries()
      .catch((err) => log.error({ err: String(err) }, 'resuming deliveries failed'))
      .then(() => executor.recover())
      .then(async (results) => {
        if (results.length) log.info({ results }, 'recovered applies');
        // The ended applies nobody reported: those just recovered, and those whose process died
        // between the end and the report (each taken by one replica, reported once).
        const reported = await runner.recoverReports();
        if (reported.length) log.info({ applies: reported }, 'reported owed applies');
      })
      .catch((err) => log.error({ err: String(err) }, 'recovery failed'))
      .finally(() => (recovering = false));
  };
  recover();
  const every = Math.max(1000, Number(env.BERTH_RECOVER_INTERVAL_MS ?? 30_000));
  const timer = setInterval(recover, every);
  timer.unref();
  const close = services.close;
  services.close = async () => {
    clearInterval(timer);
    await close();
  };
}
