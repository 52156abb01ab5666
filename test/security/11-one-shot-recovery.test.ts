// Item 11: a one-shot container (a migration job) that started and exited
// before its driver was SIGKILLed must not run again when the apply is
// recovered: recovery tells "started and exited" from "never started" by the
// container's State.StartedAt, not by whether it is running now.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { prepareApply } from '../../src/apply/prepare-apply.js';
import { DockerEngine } from '../../src/docker/docker-engine.js';
import { observe } from '../../src/docker/observe.js';
import { Executor } from '../../src/apply/executor.js';
import { Lanes } from '../../src/apply/lanes.js';
import { LABEL, names } from '../../src/model/model.js';
import { crashAt, recoverAfterCrash } from '../helpers/crash-at.js';
import { docker, projectWithStore } from '../helpers/docker.js';
import { describeDocker } from '../helpers/env.js';
import { spec, state } from '../helpers/specs.js';
import type { TestStore } from '../helpers/stores.js';
import { DENY_ALL, type Policy } from '../../src/compose/policy.js';

const PROJECT = `t-sec-11-${process.pid}`;

describeDocker('security 11: recovery never runs a one-shot container twice', () => {
  const files = projectWithStore(PROJECT);
  let ts: TestStore;
  let dir: string;
  beforeAll(() => {
    ts = files.ts;
    dir = mkdtempSync(join(tmpdir(), 'berth-sec11-'));
    chmodSync(dir, 0o777);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // The job writes to a bind of `dir`: the apply's policy allows it (without one the pre-create guard denies every bind).
  const policy = (): Policy => ({ ...DENY_ALL, bind_mount_allowlist: [{ path: dir, writable: true }] });
  const runs = () => (existsSync(join(dir, 'runs')) ? readFileSync(join(dir, 'runs'), 'utf8').split('\n').filter(Boolean).length : 0);
  const job = (env: string, exit = 0) =>
    state([spec('migrate', { command: ['sh', '-c', `echo ran >> /out/runs; exit ${exit}`], volumes: [{ type: 'bind', source: dir, target: '/out', readOnly: false }] })], undefined, [], PROJECT, env);

  it('a job that started and exited before the SIGKILL is recorded as started, not started again', async () => {
    const container = names.container(PROJECT, 'job', 'migrate', 1);
    const exited = async () => {
      const info = await docker.getContainer(container).inspect().catch(() => undefined);
      return !!info && !info.State.Running && info.State.Status === 'exited' && runs() === 1;
    };
    // Killed after the start call returned and after the job ran and exited; the journal still says `running`.
    const applyId = await crashAt(ts.url, job('job'), '^startContainer ', exited, policy());
    const start = (await ts.store.listTasksForApply(applyId)).find((t) => t.kind === 'StartContainer')!;
    expect(start.state).toBe('running');
    expect(runs()).toBe(1);

    expect(await recoverAfterCrash(ts.store, applyId)).toBe('completed');
    const after = (await ts.store.listTasksForApply(applyId)).find((t) => t.kind === 'StartContainer')!;
    expect(after.state).toBe('succeeded');
    // Give a wrongly restarted job every chance to write before counting.
    await new Promise((r) => setTimeout(r, 1500));
    expect(runs()).toBe(1);
  }, 120_000);

  it('a start journaled but never sent is sent once after the restart (never started: zero StartedAt)', async () => {
    const before = runs();
    const applyId = await crashAt(ts.url, job('fresh'), 'before:^startContainer ', undefined, policy());
    const info = await docker.getContainer(names.container(PROJECT, 'fresh', 'migrate', 1)).inspect();
    expect(info.State.StartedAt).toBe('0001-01-01T00:00:00Z');
    expect(await recoverAfterCrash(ts.store, applyId)).toBe('completed');
    const deadline = Date.now() + 30_000;
    while (runs() < before + 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 1000));
    expect(runs()).toBe(before + 1);
  }, 120_000);

  it('a failed job the plan starts again (started in an earlier life) is judged against the journal time: one run', async () => {
    const env = 'again';
    const container = names.container(PROJECT, env, 'migrate', 1);
    const { applyId: firstId } = await prepareApply(ts.store, async (_t, p, e) => (await observe(docker, p, e)).observed, {
      repo: 'acme/crash', pr: 7, environment: env, kind: 'apply', actor: 't', headSha: 'abc', desired: job(env, 3), targets: ['local'], onFailure: 'halt', policy: policy(),
    });
    const executor = new Executor({ store: ts.store, engine: () => new DockerEngine(docker), lanes: new Lanes() });
    expect(await executor.run(firstId)).toBe('completed');
    const exitedOnce = async () => !(await docker.getContainer(container).inspect()).State.Running;
    const deadline = Date.now() + 30_000;
    while (!(await exitedOnce()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const before = runs();
    const firstStart = Date.parse((await docker.getContainer(container).inspect()).State.StartedAt);

    // A job that exited 0 is finished (never planned again); one that failed is planned "stopped → start"; the driver dies after that start and after the job exited.
    const exitedAgain = async () => {
      const info = await docker.getContainer(container).inspect();
      return !info.State.Running && Date.parse(info.State.StartedAt) > firstStart && runs() === before + 1;
    };
    const applyId = await crashAt(ts.url, job(env, 3), '^startContainer ', exitedAgain, policy());
    expect((await ts.store.listTasksForApply(applyId)).find((t) => t.kind === 'StartContainer')!.state).toBe('running');
    expect(await recoverAfterCrash(ts.store, applyId)).toBe('completed');
    await new Promise((r) => setTimeout(r, 1500));
    expect(runs()).toBe(before + 1);
  }, 120_000);

  // Audit of the other "already done?" checks: a network of the planned name that appeared while the
  // driver was dead is somebody else's, not the effect of this apply's create.
  it('a CreateNetwork journaled running is not "done" because a foreign network took the name', async () => {
    const env = 'net';
    const d = job(env);
    const { applyId } = await prepareApply(ts.store, async (_t, p, e) => (await observe(docker, p, e)).observed, {
      repo: 'acme/crash', pr: 7, environment: env, kind: 'apply', actor: 't', headSha: 'abc', desired: d, targets: ['local'], onFailure: 'halt',
    });
    const create = (await ts.store.listTasksForApply(applyId)).find((t) => t.kind === 'CreateNetwork')!;
    // The crash: journaled running, the call never sent; then another party creates the name.
    await ts.store.updateTask(create.id, 'pending', { state: 'running', startedAt: Date.now() });
    await docker.createNetwork({ Name: names.network(PROJECT, env, 'default'), Labels: { [LABEL.project]: PROJECT, [LABEL.applyId]: 'someone-else' } });
    const executor = new Executor({ store: ts.store, engine: () => new DockerEngine(docker), lanes: new Lanes() });
    expect(await executor.recover()).toEqual([{ applyId, state: 'failed' }]);
    const after = (await ts.store.listTasksForApply(applyId)).find((t) => t.kind === 'CreateNetwork')!;
    expect(after.state).toBe('failed');
    expect(after.error).toContain('was not created by this apply');
    // Nothing joined the foreign network.
    expect(await docker.getContainer(names.container(PROJECT, env, 'migrate', 1)).inspect().catch(() => undefined)).toBeUndefined();
  }, 60_000);
});
