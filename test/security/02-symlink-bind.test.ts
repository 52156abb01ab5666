// Issue 10, item 2: a symlink inside an allow-listed bind directory never
// mounts what lies outside it. Apply 1 runs a container that plants
// `ln -s / ALLOWED/root`; apply 2 mounts `ALLOWED/root:/host`: the lexical
// check passes, so the guard resolves the source on the target before the
// create and refuses it (nothing created). Allow-listed paths are mounted
// read-only unless the policy marks them writable. Real engine, real symlinks
// under a temporary directory; through `berth apply` and through the app.
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/main.js';
import { LABEL } from '../../src/model/model.js';
import type { App } from '../chaos/app-harness.js';
import { startApp } from '../chaos/app-harness.js';
import { docker, removeProject } from '../helpers/docker.js';
import { describeDocker } from '../helpers/env.js';

const PROJECT = 't-sec-2';

function capture(): Io & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out: (s: string) => void (io.stdout += `${s}\n`), err: (s: string) => void (io.stderr += `${s}\n`) };
  return io;
}

const config = (project: string, allow: string) =>
  [`project: ${project}`, 'environments:', '  - name: staging', '    compose: [compose.yml]', 'policy:', `  bind_mount_allowlist: [${allow}]`, ''].join('\n');

const service = (name: string, ...lines: string[]) => [`  ${name}:`, '    image: berth-test/app:1', ...lines.map((l) => `    ${l}`)];
const compose = (...services: string[][]) => ['services:', ...services.flat(), ''].join('\n');

const serviceContainers = async (project: string, svc: string) =>
  docker.listContainers({ all: true, filters: { label: [`${LABEL.project}=${project}`, `${LABEL.service}=${svc}`] } });

async function until(what: string, f: () => boolean | Promise<boolean>, ms = 30_000) {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describeDocker('item 2: symlink escape from an allow-listed bind directory (CLI, real engine)', () => {
  let repo: string;
  let db: string;
  let allowed: string;
  const cli = async (...args: string[]) => {
    const io = capture();
    const code = await main([args[0]!, '--repo', repo, ...args.slice(1)], io);
    return { code, out: io.stdout, err: io.stderr };
  };
  const write = (allow: string, text: string) => {
    writeFileSync(join(repo, '.github/berth.yml'), config(PROJECT, allow));
    writeFileSync(join(repo, 'compose.yml'), text);
  };
  const apply = () => cli('apply', '--env', 'staging', '--yes', '--database', db);

  beforeAll(async () => {
    await removeProject(PROJECT);
    const dir = mkdtempSync(join(tmpdir(), 'berth-sec2-'));
    repo = join(dir, 'repo');
    mkdirSync(join(repo, '.github'), { recursive: true });
    db = `sqlite:${join(dir, 'berth.sqlite')}`;
    allowed = mkdtempSync('/tmp/t-sec-2-allowed-');
  });

  afterAll(async () => {
    await removeProject(PROJECT);
    if (repo) rmSync(join(repo, '..'), { recursive: true, force: true });
    if (allowed) rmSync(allowed, { recursive: true, force: true });
  });

  it('a plain allowlist entry is mounted read-only, even when compose asks for rw', async () => {
    write(allowed, compose(service('reader', 'volumes:', `  - ${allowed}:/allowed`)));
    const plan = await cli('plan', '--env', 'staging');
    expect(plan.code).toBe(2);
    expect((await apply()).code).toBe(0);
    const c = await docker.getContainer(`${PROJECT}-staging-reader-1`).inspect();
    expect(c.Mounts.find((m) => m.Destination === '/allowed')).toMatchObject({ Source: allowed, RW: false });
    // The container cannot plant anything there.
    const ex = await docker.getContainer(c.Id).exec({ Cmd: ['sh', '-c', 'ln -s / /allowed/root'], AttachStdout: true, AttachStderr: true });
    const stream = await ex.start({});
    await new Promise((r) => stream.on('end', r).resume());
    expect((await ex.inspect()).ExitCode).not.toBe(0);
    expect(existsSync(join(allowed, 'root'))).toBe(false);
    expect((await cli('plan', '--env', 'staging')).code).toBe(0);
  }, 60_000);

  it('apply 1 plants a link to / in a writable entry; apply 2 mounting it is refused on the target, nothing created', async () => {
    const writable = `{ path: ${allowed}, writable: true }`;
    // TERM ends it at once (a bare sleep as PID 1 would make every stop wait its timeout).
    const planter = service('planter', `command: ["sh", "-c", "ln -s / /allowed/root; ln -s ../../.. /allowed/up; trap 'exit 0' TERM; sleep 3600 & wait"]`, 'volumes:', `  - ${allowed}:/allowed`);
    write(writable, compose(planter));
    const first = await apply();
    expect(first.code).toBe(0);
    const planted = await docker.getContainer(`${PROJECT}-staging-planter-1`).inspect();
    expect(planted.Mounts.find((m) => m.Destination === '/allowed')).toMatchObject({ RW: true });
    await until('the planted links', () => existsSync(join(allowed, 'root')) && lstatSync(join(allowed, 'up')).isSymbolicLink());
    expect(readlinkSync(join(allowed, 'root'))).toBe('/');

    for (const [source, resolved] of [
      [`${allowed}/root`, '/'],
      [`${allowed}/root/var/run`, '/'],
      [`${allowed}/up/etc`, '/'],
    ] as const) {
      write(writable, compose(planter, service('reader', 'volumes:', `  - ${source}:/host`)));
      // The lexical check passes: the plan shows a container to create.
      const plan = await cli('plan', '--env', 'staging');
      expect(plan.code).toBe(2);
      expect(plan.out).toContain('service:reader:1, CreateContainer, missing');
      const second = await apply();
      expect(second.code).toBe(1);
      const said = second.out + second.err;
      expect(said).toContain(`service reader: bind mount of ${source} resolves to ${resolved} on the target`);
      expect(said).toContain(`outside the allow-listed ${allowed}`);
      expect(said).toContain('nothing was created');
      expect(await serviceContainers(PROJECT, 'reader')).toEqual([]);
    }
  }, 90_000);

  it('a link to the Docker socket is refused even when it stays a file name', async () => {
    symlinkSync('/var/run/docker.sock', join(allowed, 'engine'));
    write(allowed, compose(service('reader', 'volumes:', `  - ${allowed}/engine:/engine`)));
    const r = await apply();
    expect(r.code).toBe(1);
    expect(r.out + r.err).toContain(`bind mount of ${allowed}/engine resolves to /var/run/docker.sock on the target`);
    expect(await serviceContainers(PROJECT, 'reader')).toEqual([]);
  }, 60_000);

  it('a link that stays inside the allowlist is followed and mounted', async () => {
    mkdirSync(join(allowed, 'real'));
    writeFileSync(join(allowed, 'real', 'hello'), 'inside\n');
    symlinkSync(join(allowed, 'real'), join(allowed, 'data'));
    symlinkSync('real', join(allowed, 'rel'));
    write(allowed, compose(service('reader', 'volumes:', `  - ${allowed}/data:/data`, `  - ${allowed}/rel:/rel`)));
    const r = await apply();
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const c = await docker.getContainer(`${PROJECT}-staging-reader-1`).inspect();
    expect(c.State.Running).toBe(true);
    expect(c.Mounts.filter((m) => m.Type === 'bind').every((m) => m.RW === false)).toBe(true);
    // No probe container is left behind.
    expect(await docker.listContainers({ all: true, filters: { label: ['io.berth.probe'] } })).toEqual([]);
  }, 60_000);
});

const APP_REPO = 'acme/sec-symlink';
const APP_PROJECT = 't-sec-2-app';
const headOf = (id: string) => createHash('sha1').update(`sec2:${id}`).digest('hex');

describeDocker('item 2: symlink escape through the app', () => {
  let app: App;
  let allowed: string;
  beforeAll(async () => {
    allowed = mkdtempSync('/tmp/t-sec-2-app-');
    symlinkSync('/', join(allowed, 'root'));
    app = await startApp({ repo: APP_REPO, project: APP_PROJECT });
    app.fake.setFiles(APP_REPO, 'main', { '.github/berth.yml': config(APP_PROJECT, allowed), 'compose.yml': compose(service('web')) });
  }, 60_000);
  afterAll(async () => {
    await app?.close();
    if (allowed) rmSync(allowed, { recursive: true, force: true });
  });

  it('a PR mounting a symlink to / under the allowlist plans (lexically fine) but its apply fails before the create', async () => {
    const head = headOf('root');
    app.fake.setFiles(APP_REPO, head, { '.github/berth.yml': config(APP_PROJECT, allowed), 'compose.yml': compose(service('web', 'volumes:', `  - ${allowed}/root:/host`)) });
    app.fake.setPull(APP_REPO, 1, { headSha: head, author: 'alice', mergeable: true });
    expect(await app.open(1, head)).toBe(200);
    expect(app.check(head, 'berth / staging')!.conclusion).toBe('action_required');
    await app.say(1, '/apply staging');
    await app.drain();
    const [applied] = await app.ts.store.listApplies({});
    expect(applied!.state).toBe('failed');
    const tasks = await app.ts.store.listTasksForApply(applied!.id);
    const create = tasks.find((t) => t.kind === 'CreateContainer')!;
    expect(create.state).toBe('failed');
    expect(create.error).toContain(`service web: bind mount of ${allowed}/root resolves to / on the target`);
    expect(await serviceContainers(APP_PROJECT, 'web')).toEqual([]);
    const check = app.check(head, 'berth / staging')!;
    expect(check.conclusion).toBe('failure');
  }, 60_000);
});
