// Item 13: a recreate group (create new → stop old → park old → rename new →
// start new → remove old) is atomic under /stop, on_failure: halt, a failing
// Docker call and a crash: the service always ends up served by a running
// container with its name and labels (the new one if the group finished, the
// old one restored otherwise), and the next apply converges.
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { Observer } from '../../src/apply/prepare-apply.js';
import { planTargets, prepareApply } from '../../src/apply/prepare-apply.js';
import { DockerEngine } from '../../src/docker/docker-engine.js';
import { observe } from '../../src/docker/observe.js';
import { EngineError } from '../../src/apply/engine.js';
import type { Engine } from '../../src/apply/engine.js';
import { Executor } from '../../src/apply/executor.js';
import { Lanes } from '../../src/apply/lanes.js';
import type { DesiredState } from '../../src/model/model.js';
import { LABEL, names } from '../../src/model/model.js';
import type { PlanNode } from '../../src/plan/plan.js';
import { crashAt, recoverAfterCrash } from '../helpers/crash-at.js';
import { docker, projectWithStore, removeProject } from '../helpers/docker.js';
import { describeDocker } from '../helpers/env.js';
import { FakeEngine } from '../helpers/fake-engine.js';
import type { Hooks } from '../helpers/hooked-engine.js';
import { emptyObserved } from '../helpers/simulate.js';
import { hookedEngine } from '../helpers/hooked-engine.js';
import { spec, state } from '../helpers/specs.js';
import type { TestStore } from '../helpers/stores.js';

const PROJECT = `t-sec-13-${process.pid}`;
const ENV = 'live';
const observer: Observer = async (_t, p, e) => (await observe(docker, p, e)).observed;
const cleanup = () => removeProject(PROJECT);

/** web and api (api after web): two recreate groups, so a stop can land inside one while the other has not begun. */
function stack(image: string): DesiredState {
  const svc = (name: string, over = {}) => {
    const s = spec(name, { image, ...over });
    delete s.command; // the image's own CMD exits at once on SIGTERM
    return s;
  };
  return state([svc('web'), svc('api', { dependsOn: [{ service: 'web', condition: 'service_started' }] })], undefined, [], PROJECT, ENV);
}
const V1 = 'docker.io/berth-test/app:1';
const V2 = 'docker.io/berth-test/app:2';
const web = names.container(PROJECT, ENV, 'web', 1);
const api = names.container(PROJECT, ENV, 'api', 1);

describeDocker('security 13: a recreate group is atomic under stop, halt, failure and crash', () => {
  const files = projectWithStore(PROJECT);
  let ts: TestStore;
  beforeEach(() => void (ts = files.ts));
  afterEach(cleanup);

  async function apply(d: DesiredState, engine: (applyId: () => string) => Engine = () => new DockerEngine(docker)) {
    let id = '';
    const executor = new Executor({ store: ts.store, engine: () => engine(() => id), lanes: new Lanes(), parallelism: 1, stopPollMs: 0 });
    const { applyId } = await prepareApply(ts.store, observer, {
      repo: 'acme/shop', pr: 1, environment: ENV, kind: 'apply', actor: 'alice', headSha: 'abc', desired: d, targets: ['local'], onFailure: 'halt',
    });
    id = applyId;
    const result = await executor.run(applyId);
    return { applyId, result, tasks: await ts.store.listTasksForApply(applyId) };
  }

  /** Every service is served: a running container under its canonical name with its labels; no leftover temporary or parked container. */
  async function serving(): Promise<Record<string, { id: string; image: string }>> {
    const out: Record<string, { id: string; image: string }> = {};
    for (const [service, name] of [['web', web], ['api', api]] as const) {
      const info = await docker.getContainer(name).inspect();
      expect(info.State.Running, `${name} running`).toBe(true);
      expect(info.Config.Labels[LABEL.project]).toBe(PROJECT);
      expect(info.Config.Labels[LABEL.environment]).toBe(ENV);
      expect(info.Config.Labels[LABEL.service]).toBe(service);
      out[service] = { id: info.Id, image: info.Config.Image };
    }
    const all = await docker.listContainers({ all: true, filters: { label: [`${LABEL.project}=${PROJECT}`] } });
    expect(all.map((c) => c.Names[0]!.slice(1)).sort()).toEqual([api, web]);
    return out;
  }

  async function converges(d: DesiredState) {
    const r = await apply(d);
    expect(r.result).toBe('completed');
    const [again] = await planTargets(d, ['local'], observer);
    expect(again!.plan.nodes).toEqual([]);
    const s = await serving();
    expect(s.web.image).toBe(d.services[0]!.spec.image);
  }

  // The Docker calls of web's recreate group, in order (the subject names the container as the executor does).
  const steps = (oldWebId: string): [string, RegExp][] => [
    ['create new', new RegExp(`^createContainer ${web}_`)],
    ['stop old', new RegExp(`^stopContainer ${oldWebId}$`)],
    ['park old', new RegExp(`^renameContainer ${oldWebId} ${web}_old$`)],
    ['rename new', new RegExp(`^renameContainer ${web}_\\w+ ${web}$`)],
    ['start new', new RegExp(`^startContainer ${web}$`)],
  ];

  for (const [i, point] of ['create new', 'stop old', 'park old', 'rename new', 'start new'].entries()) {
    it(`/stop right after "${point}" of web's recreate: web and api keep serving; the next apply converges`, async () => {
      await converges(stack(V1));
      const before = await serving();
      const match = steps(before.web.id)[i]![1];
      let stopped = false;
      const r = await apply(stack(V2), (id) =>
        hookedEngine(new DockerEngine(docker), {
          after: async (call) => {
            if (!stopped && match.test(call)) {
              stopped = true;
              await ts.store.requestStop(id());
            }
          },
        }),
      );
      expect(stopped).toBe(true);
      expect(['stopped', 'completed']).toContain(r.result);
      const now = await serving();
      const group = (g: string) => r.tasks.filter((t) => (JSON.parse(t.nodeJson) as PlanNode).group === g);
      if (i === 0) {
        // Nothing destructive had begun: the group is cut before the old container was touched.
        expect(now.web.id).toBe(before.web.id);
        expect(group('recreate:web:1').some((t) => t.state === 'cancelled')).toBe(true);
      } else {
        // Begun: web's group ran to its end under the stop.
        expect(group('recreate:web:1').map((t) => t.state)).toEqual(group('recreate:web:1').map(() => 'succeeded'));
        expect(now.web.image).toBe(V2);
      }
      // api's group had not begun its destructive steps when the stop came: cancelled, old api untouched.
      expect(now.api.id).toBe(before.api.id);
      expect(group('recreate:api:1').some((t) => t.state === 'cancelled')).toBe(true);
      await converges(stack(V2));
    }, 120_000);
  }

  for (const [i, point] of ['create new', 'stop old', 'park old', 'rename new', 'start new'].entries()) {
    for (const when of ['before', 'after'] as const) {
      it(`a failure ${when} Docker did "${point}" restores the old web container; the next apply converges`, async () => {
        await converges(stack(V1));
        const before = await serving();
        const match = steps(before.web.id)[i]![1];
        let failed = false;
        const fail: Hooks[typeof when] = (call) => {
          if (!failed && match.test(call)) {
            failed = true;
            throw new EngineError(`injected failure ${when} ${call}`, 500);
          }
        };
        const r = await apply(stack(V2), () => hookedEngine(new DockerEngine(docker), { [when]: fail }));
        expect(failed).toBe(true);
        expect(r.result).toBe('failed');
        const failedTask = r.tasks.find((t) => t.state === 'failed')!;
        expect(failedTask.error).toContain('injected failure');
        // The same old containers serve, under their names, nothing half-done is left.
        const now = await serving();
        expect(now.web.id).toBe(before.web.id);
        expect(now.api.id).toBe(before.api.id);
        if (i > 0 || when === 'after') expect(failedTask.error).toContain(`the old container ${web} was restored`);
        await converges(stack(V2));
      }, 120_000);
    }
  }

  it('a new container that never becomes healthy (a dependant waits for it) is replaced by the old one again', async () => {
    // Healthy only on image 1: the recreate to image 2 fails at WaitHealthy, after the new container started.
    const health = { test: ['CMD-SHELL', 'grep -qx 1 /VERSION'], intervalMs: 200, timeoutMs: 2000, retries: 2, startPeriodMs: 0 };
    const gated = (image: string) => {
      const d = stack(image);
      const [w, a] = d.services.map((x) => x.spec);
      return state([{ ...w!, healthcheck: health }, { ...a!, dependsOn: [{ service: 'web', condition: 'service_healthy' as const }] }], undefined, [], PROJECT, ENV);
    };
    expect((await apply(gated(V1))).result).toBe('completed');
    const before = await serving();
    const r = await apply(gated(V2));
    expect(r.result).toBe('failed');
    const wait = r.tasks.find((t) => t.kind === 'WaitHealthy')!;
    expect(wait.state).toBe('failed');
    expect(wait.error).toContain(`the old container ${web} was restored`);
    const now = await serving();
    expect(now.web.id).toBe(before.web.id);
    expect(now.api.id).toBe(before.api.id);
    const [again] = await planTargets(gated(V1), ['local'], observer);
    expect(again!.plan.nodes).toEqual([]);
  }, 120_000);

  it('on_failure: halt from another target right after "stop old": web\'s begun group finishes, api\'s is cancelled; the next apply converges', async () => {
    await converges(stack(V1));
    const before = await serving();
    const fake = new FakeEngine();
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let applyId = '';
    const engines = (target: string): Engine =>
      target === 'local'
        ? hookedEngine(new DockerEngine(docker), {
            after: async (call) => {
              if (!new RegExp(`^stopContainer ${before.web.id}$`).test(call)) return;
              release();
              // Hold web's group here until the other target's failure (and so the halt) is journaled.
              const deadline = Date.now() + 30_000;
              while (!(await ts.store.listTasksForApply(applyId)).some((t) => t.state === 'failed') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
            },
          })
        : hookedEngine(fake, {
            before: async (call) => {
              if (!call.startsWith('createContainer')) return;
              await released;
              throw new EngineError('injected failure on the other target', 500);
            },
          });
    const executor = new Executor({ store: ts.store, engine: engines, lanes: new Lanes(), parallelism: 1, stopPollMs: 0 });
    const twoTargets: Observer = async (t, p, e) => (t === 'local' ? observer(t, p, e) : emptyObserved(p, e));
    ({ applyId } = await prepareApply(ts.store, twoTargets, {
      repo: 'acme/shop', pr: 1, environment: ENV, kind: 'apply', actor: 'alice', headSha: 'abc', desired: stack(V2), targets: ['local', 'other'], onFailure: 'halt',
    }));
    expect(await executor.run(applyId)).toBe('failed');
    const tasks = await ts.store.listTasksForApply(applyId);
    const group = (g: string) => tasks.filter((t) => (JSON.parse(t.nodeJson) as PlanNode).group === g && t.resource.startsWith('service:') && t.operationId === tasks.find((x) => x.kind === 'StopContainer')!.operationId);
    expect(group('recreate:web:1').every((t) => t.state === 'succeeded')).toBe(true);
    expect(group('recreate:api:1').some((t) => t.state === 'cancelled')).toBe(true);
    const now = await serving();
    expect(now.web.image).toBe(V2);
    expect(now.api.id).toBe(before.api.id);
    await converges(stack(V2));
  }, 120_000);

  for (const point of ['stop old', 'park old', 'rename new', 'start new']) {
    it(`a driver SIGKILLed right after "${point}" is recovered: the group finishes, web serves the new image`, async () => {
      await converges(stack(V1));
      const before = await serving();
      const idx = ['create new', 'stop old', 'park old', 'rename new', 'start new'].indexOf(point);
      const applyId = await crashAt(ts.url, stack(V2), steps(before.web.id)[idx]![1].source);
      expect(await recoverAfterCrash(ts.store, applyId)).toBe('completed');
      const now = await serving();
      expect(now.web.image).toBe(V2);
      const [again] = await planTargets(stack(V2), ['local'], observer);
      expect(again!.plan.nodes).toEqual([]);
    }, 120_000);
  }
});
