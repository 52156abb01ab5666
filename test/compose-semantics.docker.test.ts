// Compose semantics on the real engine, each case written from a compose file
// the way a user would: one-shot jobs that finished are converged, a paused
// container is unpaused, service_completed_successfully waits for exit 0,
// external and pre-existing networks and volumes keep their real names and
// data, anonymous volumes survive a recreate, depends_on.restart restarts the
// dependant, service_healthy waits for an image's own HEALTHCHECK. Every
// object is labelled with this file's own project.
import { expect, it } from 'vitest';
import { loadCompose } from '../src/compose/load.js';
import { DENY_ALL } from '../src/compose/policy.js';
import type { DesiredState } from '../src/model/model.js';
import { LABEL } from '../src/model/model.js';
import { planToString } from '../src/plan/plan.js';
import { tarOf } from '../src/docker/tar.js';
import { docker, removeProject } from './helpers/docker.js';
import { describeDocker } from './helpers/env.js';
import { realApplyHarness } from './helpers/real-apply.js';

const PROJECT = `t-sem-${process.pid}`;
const ENV = 'staging';
const cname = (service: string, r = 1) => `${PROJECT}-${ENV}-${service}-${r}`;

const load = (text: string, shared?: string[]): DesiredState =>
  loadCompose([{ path: 'compose.yml', text }], { project: PROJECT, environment: ENV, ...(shared ? { policy: { ...DENY_ALL, allow_shared_objects: shared } } : {}) });

/** Polls until `f` is truthy (generous limit), returning its value. */
async function until<T>(what: string, f: () => Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
const exited = (name: string) => until(`${name} to exit`, async () => {
  const i = await docker.getContainer(name).inspect();
  return i.State.Running ? undefined : i;
});

describeDocker('compose semantics on the real Docker engine', () => {
  const { plan, apply } = realApplyHarness(PROJECT);

  it('a one-shot job that exited 0 under restart: no is converged, not re-run', async () => {
    const d = load(`
services:
  job:
    image: berth-test/app:1
    command: ["sh", "-c", "exit 0"]
    restart: "no"
`);
    expect((await apply(d)).result).toBe('completed');
    const first = await exited(cname('job'));
    expect(first.State.ExitCode).toBe(0);
    expect(planToString(await plan(d))).toBe('');
    const again = await apply(d);
    expect(again.tasks).toEqual([]);
    expect((await docker.getContainer(cname('job')).inspect()).State.StartedAt).toBe(first.State.StartedAt);
  }, 60_000);

  it('a one-shot job that failed is started again', async () => {
    const d = load(`
services:
  job:
    image: berth-test/app:1
    command: ["sh", "-c", "exit 4"]
`);
    expect((await apply(d)).result).toBe('completed');
    await exited(cname('job'));
    expect(planToString(await plan(d))).toMatch(/service:job:1, StartContainer, stopped/);
  }, 60_000);

  it('a paused container is unpaused, and the next plan is empty', async () => {
    const d = load(`
services:
  web:
    image: berth-test/app:1
`);
    expect((await apply(d)).result).toBe('completed');
    await docker.getContainer(cname('web')).pause();
    const r = await apply(d);
    expect(planToString(r.plan)).toBe('[] -> #1 service:web:1, UnpauseContainer, paused\n');
    expect(r.result).toBe('completed');
    const info = await docker.getContainer(cname('web')).inspect();
    expect(info.State.Paused).toBe(false);
    expect(info.State.Running).toBe(true);
    expect((await plan(d)).nodes).toEqual([]);
  }, 60_000);

  const migrateStack = (code: number) => load(`
services:
  migrate:
    image: berth-test/app:1
    command: ["sh", "-c", "sleep 1; exit ${code}"]
  api:
    image: berth-test/app:1
    depends_on:
      migrate: {condition: service_completed_successfully}
`);

  it('service_completed_successfully: the dependant starts only after the dependency exited 0', async () => {
    const r = await apply(migrateStack(0));
    expect(r.result).toBe('completed');
    expect(planToString(r.plan)).toMatch(/service:migrate:1, WaitExited, service_completed_successfully/);
    const migrate = await docker.getContainer(cname('migrate')).inspect();
    const api = await docker.getContainer(cname('api')).inspect();
    expect(migrate.State.Running).toBe(false);
    expect(migrate.State.ExitCode).toBe(0);
    expect(Date.parse(api.State.StartedAt)).toBeGreaterThanOrEqual(Date.parse(migrate.State.FinishedAt));
    expect((await plan(migrateStack(0))).nodes).toEqual([]);
  }, 60_000);

  it('service_completed_successfully: a non-zero exit fails the apply and skips the dependant', async () => {
    const r = await apply(migrateStack(3));
    expect(r.result).toBe('failed');
    const wait = r.tasks.find((t) => t.kind === 'WaitExited')!;
    expect(wait.state).toBe('failed');
    expect(wait.error).toContain('exited with code 3');
    expect(r.tasks.find((t) => t.kind === 'StartContainer' && t.resource === 'service:api:1')!.state).toBe('skipped');
    const api = await docker.getContainer(cname('api')).inspect();
    expect(api.State.Running).toBe(false);
    expect(api.State.StartedAt).toBe('0001-01-01T00:00:00Z');
  }, 60_000);

  it('an external volume is used by its real name, never created; missing, the plan fails with its location', async () => {
    const text = (name: string) => `
services:
  app:
    image: berth-test/app:1
    volumes: ["shared:/data"]
volumes:
  shared:
    external: true
    name: ${name}
`;
    const missing = await plan(load(text(`${PROJECT}-nope`))).catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: 'external_missing', file: 'compose.yml', line: 7 });
    expect(String(missing)).toContain(`no volume named "${PROJECT}-nope"`);
    await docker.createVolume({ Name: `${PROJECT}-ext-data`, Labels: { [LABEL.project]: PROJECT } });
    // a volume this environment did not make: used only when the policy shares it by name
    expect(await plan(load(text(`${PROJECT}-ext-data`))).catch((e: unknown) => e)).toMatchObject({ code: 'not_shared', file: 'compose.yml', line: 7 });
    const r = await apply(load(text(`${PROJECT}-ext-data`), [`${PROJECT}-ext-data`]));
    expect(r.result).toBe('completed');
    expect(planToString(r.plan)).not.toContain('CreateVolume');
    const info = await docker.getContainer(cname('app')).inspect();
    expect(info.Mounts.find((m) => m.Destination === '/data')?.Name).toBe(`${PROJECT}-ext-data`);
    expect((await docker.listVolumes()).Volumes.map((v) => v.Name)).not.toContain(`${PROJECT}-${ENV}_shared`);
    expect((await plan(load(text(`${PROJECT}-ext-data`), [`${PROJECT}-ext-data`]))).nodes).toEqual([]);
  }, 60_000);

  it('an external network is joined by its real name and the stack converges', async () => {
    const net = await docker.createNetwork({ Name: `${PROJECT}-edge`, Labels: { [LABEL.project]: PROJECT } });
    const text = `
services:
  app:
    image: berth-test/app:1
    networks: [edge]
networks:
  edge:
    external: true
    name: ${PROJECT}-edge
`;
    // a network this environment did not make (a reverse proxy's, made by hand): joined only when the policy shares it
    expect(await plan(load(text)).catch((e: unknown) => e)).toMatchObject({ code: 'not_shared', file: 'compose.yml' });
    const d = load(text, [`${PROJECT}-edge`]);
    const r = await apply(d);
    expect(r.result).toBe('completed');
    const info = await docker.getContainer(cname('app')).inspect();
    expect(Object.keys(info.NetworkSettings.Networks)).toEqual([`${PROJECT}-edge`]);
    expect((await plan(d)).nodes).toEqual([]);
    await docker.getContainer(cname('app')).remove({ force: true });
    await net.remove();
    expect(await plan(d).catch((e: unknown) => e)).toMatchObject({ code: 'external_missing', file: 'compose.yml' });
  }, 60_000);

  it("a network someone created under berth's name is adopted when it matches", async () => {
    await docker.createNetwork({ Name: `${PROJECT}-${ENV}_default`, Labels: { [LABEL.project]: PROJECT } });
    const d = load(`
services:
  app:
    image: berth-test/app:1
`);
    const r = await apply(d);
    expect(r.result).toBe('completed');
    expect(planToString(r.plan)).not.toContain('CreateNetwork');
    expect(Object.keys((await docker.getContainer(cname('app')).inspect()).NetworkSettings.Networks)).toEqual([`${PROJECT}-${ENV}_default`]);
    expect((await plan(d)).nodes).toEqual([]);
  }, 60_000);

  it('name: on a network and a volume berth creates is their name in Docker; another environment using the same name is refused, located', async () => {
    const text = `
services:
  app:
    image: berth-test/app:1
    networks: [net]
    volumes: ["data:/data"]
networks:
  net:
    name: ${PROJECT}-shared-net
volumes:
  data:
    name: ${PROJECT}-shared-data
`;
    const d = load(text);
    const r = await apply(d);
    expect(r.result).toBe('completed');
    const info = await docker.getContainer(cname('app')).inspect();
    expect(Object.keys(info.NetworkSettings.Networks)).toEqual([`${PROJECT}-shared-net`]);
    expect(info.Mounts.find((m) => m.Destination === '/data')!.Name).toBe(`${PROJECT}-shared-data`);
    expect((await docker.getVolume(`${PROJECT}-shared-data`).inspect()).Labels[LABEL.volume]).toBe('data');
    expect((await plan(d)).nodes).toEqual([]);
    // production on the same target with the same file: the name is staging's, never shared silently
    const production = loadCompose([{ path: 'compose.yml', text }], { project: PROJECT, environment: 'production' });
    const err = await plan(production).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'name_taken', file: 'compose.yml', line: 8, path: 'networks.net' });
    expect(String(err)).toContain(`network net: the name "${PROJECT}-shared-net" is already berth's network net of project ${PROJECT}, environment staging on this target`);
  }, 60_000);

  it("adoption compares address pools: a network under berth's name with another subnet is refused, the same subnet is adopted", async () => {
    const made = await docker.createNetwork({ Name: `${PROJECT}-${ENV}_ipnet`, Labels: { [LABEL.project]: PROJECT }, IPAM: { Driver: 'default', Config: [{ Subnet: '10.231.7.0/24' }] } });
    const d = (subnet: string) =>
      load(`
services:
  app:
    image: berth-test/app:1
    networks: [ipnet]
networks:
  ipnet:
    ipam:
      config:
        - subnet: ${subnet}
`);
    const err = await plan(d('10.231.8.0/24')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'name_taken', file: 'compose.yml', line: 7 });
    expect(String(err)).toContain('ipam config: wants subnet 10.231.8.0/24, has subnet 10.231.7.0/24');
    const r = await apply(d('10.231.7.0/24'));
    expect(r.result).toBe('completed');
    expect(planToString(r.plan)).not.toContain('CreateNetwork');
    expect(Object.keys((await docker.getContainer(cname('app')).inspect()).NetworkSettings.Networks)).toEqual([`${PROJECT}-${ENV}_ipnet`]);
    await docker.getContainer(cname('app')).remove({ force: true });
    await made.remove();
  }, 60_000);

  it("a volume under berth's name with other options fails the plan naming what differs", async () => {
    await docker.createVolume({ Name: `${PROJECT}-${ENV}_data`, Labels: { [LABEL.project]: PROJECT }, DriverOpts: { type: 'tmpfs', device: 'tmpfs' } });
    const err = await plan(load(`
services:
  app:
    image: berth-test/app:1
    volumes: ["data:/data"]
volumes:
  data: {}
`)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'name_taken', file: 'compose.yml', line: 7 });
    expect(String(err)).toContain(`"${PROJECT}-${ENV}_data"`);
    expect(String(err)).toContain('driver option type: wants (unset), has tmpfs');
  }, 60_000);

  it("a recreate mounts the old container's anonymous volumes again (their data survives), and does not remove them", async () => {
    const d = (v: string) => load(`
services:
  app:
    image: berth-test/app:1
    command: ["sh", "-c", "test -f /cache/first || echo ${v} > /cache/first; trap 'exit 0' TERM; sleep 3600 & wait"]
    environment: {V: "${v}"}
    volumes: ["/cache"]
`);
    expect((await apply(d('one'))).result).toBe('completed');
    const before = (await docker.getContainer(cname('app')).inspect()).Mounts.find((m) => m.Destination === '/cache')!.Name!;
    expect(before).toMatch(/^[0-9a-f]{64}$/);
    const r = await apply(d('two'));
    expect(r.result).toBe('completed');
    expect(planToString(r.plan)).toContain('CreateContainer, config changed');
    const after = await docker.getContainer(cname('app')).inspect();
    expect(after.Config.Env).toContain('V=two');
    expect(after.Mounts.find((m) => m.Destination === '/cache')!.Name).toBe(before);
    expect((await plan(d('two'))).nodes).toEqual([]);
    await docker.getContainer(cname('app')).remove({ force: true });
    await docker.getVolume(before).remove();
  }, 60_000);

  it('depends_on.restart: the dependant is restarted when its dependency is recreated', async () => {
    const d = (v: string) => load(`
services:
  db:
    image: berth-test/app:1
    environment: {V: "${v}"}
  api:
    image: berth-test/app:1
    depends_on:
      db: {condition: service_started, restart: true}
`);
    expect((await apply(d('one'))).result).toBe('completed');
    const api1 = await docker.getContainer(cname('api')).inspect();
    const r = await apply(d('two'));
    expect(r.result).toBe('completed');
    expect(planToString(r.plan)).toMatch(/service:api:1, StopContainer, dependency db recreated .*\[restart:api:1\]/);
    const db2 = await docker.getContainer(cname('db')).inspect();
    const api2 = await docker.getContainer(cname('api')).inspect();
    expect(api2.Id).toBe(api1.Id);
    expect(api2.State.Running).toBe(true);
    expect(Date.parse(api2.State.StartedAt)).toBeGreaterThan(Date.parse(api1.State.StartedAt));
    expect(Date.parse(api2.State.StartedAt)).toBeGreaterThanOrEqual(Date.parse(db2.State.StartedAt));
    expect((await plan(d('two'))).nodes).toEqual([]);
  }, 60_000);
  it("service_healthy without a healthcheck in the file waits for the image's HEALTHCHECK; an image without one fails that step, named", async () => {
    // an image with a HEALTHCHECK of its own, built locally from the test image (no registry)
    const tag = `berth-test/healthy:${process.pid}`;
    const dockerfile = 'FROM berth-test/app:1\nHEALTHCHECK --interval=1s --timeout=2s --retries=30 CMD test -f /VERSION\n';
    const stream = await docker.buildImage(tarOf([{ path: '/Dockerfile', content: Buffer.from(dockerfile), mode: 0o644, uid: 0, gid: 0 }]) as unknown as NodeJS.ReadableStream, { t: tag });
    await new Promise((ok, ko) => docker.modem.followProgress(stream, (e: Error | null) => (e ? ko(e) : ok(undefined))));
    try {
      const stack = (image: string) => load(`
services:
  db:
    image: ${image}
  api:
    image: berth-test/app:1
    depends_on:
      db: {condition: service_healthy}
`);
      const r = await apply(stack(tag));
      expect(r.result).toBe('completed');
      expect(planToString(r.plan)).toMatch(/service:db:1, WaitHealthy, service_healthy \(the image's healthcheck\)/);
      const db = await docker.getContainer(cname('db')).inspect();
      const api = await docker.getContainer(cname('api')).inspect();
      expect(db.State.Health?.Status).toBe('healthy');
      expect(api.State.Running).toBe(true);
      expect((await plan(stack(tag))).nodes).toEqual([]);

      // `healthcheck: {disable: false}` (immich's way of asking for the image's healthcheck): the image's test runs
      await removeProject(PROJECT);
      const on = load(`
services:
  db:
    image: ${tag}
    healthcheck:
      disable: false
  api:
    image: berth-test/app:1
    depends_on:
      db: {condition: service_healthy}
`);
      expect((await apply(on)).result).toBe('completed');
      const dbOn = await docker.getContainer(cname('db')).inspect();
      expect(dbOn.Config.Healthcheck?.Test).toEqual(['CMD-SHELL', 'test -f /VERSION']);
      expect(dbOn.State.Health?.Status).toBe('healthy');
      expect((await plan(on)).nodes).toEqual([]);

      // A test of its own with the timings left out (baserow's celery service): the image's timings stay,
      // as docker compose leaves them (0 → the daemon takes the image's); before, berth wrote Docker's 30s over them.
      await removeProject(PROJECT);
      const ownTest = load(`
services:
  db:
    image: ${tag}
    healthcheck:
      test: ["CMD", "test", "-e", "/VERSION"]
  api:
    image: berth-test/app:1
    depends_on:
      db: {condition: service_healthy}
`);
      expect((await apply(ownTest)).result).toBe('completed');
      const dbOwn = await docker.getContainer(cname('db')).inspect();
      expect(dbOwn.Config.Healthcheck).toMatchObject({ Test: ['CMD', 'test', '-e', '/VERSION'], Interval: 1_000_000_000, Timeout: 2_000_000_000, Retries: 30 });
      expect(dbOwn.State.Health?.Status).toBe('healthy');
      expect((await plan(ownTest)).nodes).toEqual([]);

      await removeProject(PROJECT);
      const bad = await apply(stack('berth-test/app:1'));
      expect(bad.result).toBe('failed');
      const wait = bad.tasks.find((t) => t.kind === 'WaitHealthy')!;
      expect(wait.state).toBe('failed');
      expect(wait.error).toContain(`${cname('db')} has no healthcheck (none in the compose files, none in its image)`);
      expect(bad.tasks.find((t) => t.kind === 'StartContainer' && t.resource === 'service:api:1')!.state).toBe('skipped');
    } finally {
      await docker.getImage(tag).remove({ force: true }).catch(() => undefined);
    }
  }, 90_000);
});
