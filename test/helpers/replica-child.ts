// A berth replica in a process of its own, wired like production: its own
// store from DATABASE_URL, berth's own SIGTERM drain, crash recovery and
// delivery resumption at start (unless BERTH_TEST_RECOVER=0). Env as for
// app-child.ts. Prints "listening <url>", and "sigterm" when it gets one.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { createNodeMiddleware, Probot, ProbotOctokit } from 'probot';
import { berth } from '../../src/index.js';
import type { BerthServices } from '../../src/index.js';
import { Targets } from '../../src/targets.js';

const Octokit = ProbotOctokit.defaults((o: Record<string, unknown>) => ({ ...o, throttle: { ...(o.throttle as object), enabled: false }, retry: { enabled: false } }));
const probot = new Probot({
  appId: Number(process.env.BERTH_TEST_APP_ID ?? 4244),
  privateKey: process.env.BERTH_TEST_KEY!,
  secret: process.env.BERTH_TEST_SECRET!,
  baseUrl: process.env.BERTH_TEST_GITHUB_URL!,
  Octokit,
  log: pino({ level: process.env.BERTH_TEST_LOG ?? 'silent' }, pino.destination(2)),
});
let services!: BerthServices;
const mw = await createNodeMiddleware(
  berth({ targets: Targets.single('unix:///var/run/docker.sock'), recover: process.env.BERTH_TEST_RECOVER !== '0', drift: false, progressIntervalMs: 200, onReady: (s) => (services = s) }),
  { probot },
);
const server = createServer((req, res) => {
  if (req.url === '/__idle') {
    void services.idle().then(() => res.writeHead(200).end('idle'));
    return;
  }
  void mw(req, res, () => res.writeHead(404).end());
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`listening http://127.0.0.1:${(server.address() as AddressInfo).port}\n`));
// berth's own handler drains and exits; this one only says the signal arrived.
process.on('SIGTERM', () => process.stdout.write('sigterm\n'));
