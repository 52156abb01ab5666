// The berth app in a process of its own, for measurements that must not
// share an event loop with the test doubles: env BERTH_TEST_GITHUB_URL (the
// fake GitHub), BERTH_TEST_KEY (PEM), BERTH_TEST_SECRET, DATABASE_URL.
// Prints "listening <url>"; GET /__idle answers once every detached job ended.
// As a replica wired like production (test/helpers/app-process.ts):
// BERTH_TEST_RECOVER=1 runs crash recovery and delivery resumption,
// BERTH_TEST_DRAIN=1 leaves SIGTERM to berth's own drain (and prints "sigterm").
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { createNodeMiddleware, Probot, ProbotOctokit } from 'probot';
import { berth } from '../../src/index.js';
import type { BerthServices } from '../../src/index.js';
import { Targets } from '../../src/docker/targets.js';

const Octokit = ProbotOctokit.defaults((o: Record<string, unknown>) => ({ ...o, throttle: { ...(o.throttle as object), enabled: false } }));
const probot = new Probot({
  appId: Number(process.env.BERTH_TEST_APP_ID ?? 4244),
  privateKey: process.env.BERTH_TEST_KEY!,
  secret: process.env.BERTH_TEST_SECRET!,
  baseUrl: process.env.BERTH_TEST_GITHUB_URL!,
  Octokit,
  log: pino({ level: 'info' }, { write: () => {} }),
});
let services!: BerthServices;
const mw = await createNodeMiddleware(
  berth({
    targets: Targets.single('unix:///var/run/docker.sock'),
    recover: process.env.BERTH_TEST_RECOVER === '1',
    drift: false,
    ...(process.env.BERTH_TEST_PROGRESS_MS ? { progressIntervalMs: Number(process.env.BERTH_TEST_PROGRESS_MS) } : {}),
    onReady: (s) => (services = s),
  }),
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
if (process.env.BERTH_TEST_DRAIN === '1') process.on('SIGTERM', () => process.stdout.write('sigterm\n'));
else process.on('SIGTERM', () => server.close(() => process.exit(0)));
