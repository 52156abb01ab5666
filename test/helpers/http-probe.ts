// A client on a Docker network asking for a service's name in a tight loop,
// every request a fresh DNS lookup (as a new connection from any client would
// be), and recording each answer: the rollout tests and bench count what it saw.
// busybox nc: the test image's static wget crashes when given a timeout (-T).
import type Dockerode from 'dockerode';
import { until } from './wait.js';

export interface ProbeResult {
  /** answers by body (/VERSION of the container that answered) */
  ok: Record<string, number>;
  failed: number;
  total: number;
}

export async function startProbe(docker: Dockerode, opts: { name: string; network: string; host: string; port?: number }): Promise<{ stop: (settled?: { version: string; streak: number }) => Promise<ProbeResult> }> {
  const port = opts.port ?? 8080;
  const script = [
    'while [ ! -f /tmp/stop ]; do',
    `  r=$(printf "GET /VERSION HTTP/1.0\\r\\n\\r\\n" | nc -w 3 ${opts.host} ${port} 2>/dev/null)`,
    '  case "$r" in *" 200 OK"*1) echo "ok 1";; *" 200 OK"*2) echo "ok 2";; *) echo fail;; esac',
    'done; echo done',
  ].join('\n');
  // Not labelled with any berth project: berth must not take it for one of its containers.
  const c = await docker.createContainer({ name: opts.name, Image: 'berth-test/app:1', Cmd: ['sh', '-c', script], Tty: true, HostConfig: { NetworkMode: opts.network } });
  await c.start();
  // It is running and got answers before anything changes.
  await until('the probe to get answers', async () => /ok [12]/.test(((await c.logs({ stdout: true, stderr: false })) as Buffer).toString()));
  return {
    /**
     * `settled`: first keep asking until the last `streak` answers all came from that version (the
     * change is over only once the service answers steadily again), so an outage after the deploying
     * command returned (containers still starting) is counted too.
     */
    async stop(settled?: { version: string; streak: number }) {
      if (settled) {
        const want = `ok ${settled.version}`;
        await until(`${settled.streak} answers in a row from version ${settled.version}`, async () => {
          const lines = ((await c.logs({ stdout: true, stderr: false, tail: settled.streak })) as Buffer).toString().split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
          return lines.length >= settled.streak && lines.every((l) => l === want);
        }, { intervalMs: 50 });
      }
      const exec = await c.exec({ Cmd: ['touch', '/tmp/stop'] });
      await exec.start({});
      await c.wait();
      const lines = ((await c.logs({ stdout: true, stderr: false })) as Buffer)
        .toString()
        .split(/\r?\n/)
        .map((l) => l.trim())
        .filter(Boolean);
      await c.remove({ force: true });
      if (lines[lines.length - 1] !== 'done') throw new Error(`the probe did not finish cleanly: ${lines.slice(-3).join(' | ')}`);
      const ok: Record<string, number> = {};
      let failed = 0;
      for (const l of lines) {
        if (l === 'fail') failed++;
        const m = /^ok (\d+)$/.exec(l);
        if (m) ok[m[1]!] = (ok[m[1]!] ?? 0) + 1;
      }
      return { ok, failed, total: failed + Object.values(ok).reduce((a, b) => a + b, 0) };
    },
  };
}
