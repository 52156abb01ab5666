// observe() without Docker: a stub that records every call, to pin down the
// one-list-per-kind contract and the label parsing rules.
import type Dockerode from 'dockerode';
import { describe, expect, it } from 'vitest';
import { normalizeImageRef, observe, parseConfigLabel } from '../src/docker/observe.js';
import { EngineError } from '../src/apply/engine.js';
import { LABEL } from '../src/model/model.js';

const P = 'shop';
const E = 'staging';

const berth = (over: Record<string, string> = {}) => ({ [LABEL.project]: P, [LABEL.environment]: E, ...over });

function container(id: string, name: string, over: Partial<Dockerode.ContainerInfo> & { labels?: Record<string, string>; nets?: Record<string, string> } = {}): Dockerode.ContainerInfo {
  const { labels, nets, ...rest } = over;
  return {
    Id: id,
    Names: [`/${name}`],
    Image: 'berth-test/app:1',
    ImageID: 'sha256:x',
    Command: '',
    Created: 0,
    Ports: [],
    Labels: berth({ [LABEL.service]: 'web', [LABEL.replica]: '1', [LABEL.configHash]: 'hash-web', ...labels }),
    State: 'running',
    Status: '',
    HostConfig: { NetworkMode: 'default' },
    NetworkSettings: { Networks: Object.fromEntries(Object.entries(nets ?? {}).map(([n, netId]) => [n, { NetworkID: netId } as Dockerode.NetworkInfo])) },
    Mounts: [],
    ...rest,
  };
}

const network = (id: string, name: string, labels: Record<string, string>) => ({ Id: id, Name: name, Labels: labels }) as unknown as Dockerode.NetworkInspectInfo;

function stub(data: { containers?: Dockerode.ContainerInfo[]; networks?: Dockerode.NetworkInspectInfo[]; volumes?: unknown[]; fail?: string }) {
  const calls: { method: string; opts: unknown }[] = [];
  const answer = <T>(method: string, opts: unknown, value: T): Promise<T> => {
    calls.push({ method, opts });
    if (data.fail === method) return Promise.reject(Object.assign(new Error('(HTTP code 500) server error - boom: disk on fire '), { statusCode: 500, json: { message: 'boom: disk on fire' } }));
    return Promise.resolve(value);
  };
  const docker = {
    listContainers: (opts: unknown) => answer('listContainers', opts, data.containers ?? []),
    listNetworks: (opts: unknown) => answer('listNetworks', opts, data.networks ?? []),
    listVolumes: (opts: unknown) => answer('listVolumes', opts, { Volumes: data.volumes ?? null, Warnings: null }),
  } as unknown as Dockerode;
  return { docker, calls };
}

describe('observe', () => {
  it('makes exactly one list call per kind, filtered by project and environment labels', async () => {
    const { docker, calls } = stub({});
    await observe(docker, P, E);
    const filters = { label: [`${LABEL.project}=${P}`, `${LABEL.environment}=${E}`] };
    expect(calls).toEqual([
      { method: 'listContainers', opts: { all: true, filters } },
      { method: 'listNetworks', opts: { filters } },
      { method: 'listVolumes', opts: { filters } },
    ]);
  });

  it('parses labels, maps networks to compose keys and sorts everything', async () => {
    const spec = { name: 'web', image: 'docker.io/berth-test/app:1', environment: {} };
    const { docker } = stub({
      networks: [
        network('n2', 'shop-staging_default', berth({ [LABEL.network]: 'default', [LABEL.configHash]: 'hn2' })),
        network('n1', 'shop-staging_back', berth({ [LABEL.network]: 'back', [LABEL.configHash]: 'hn1' })),
      ],
      volumes: [{ Name: 'shop-staging_data', Labels: berth({ [LABEL.volume]: 'data', [LABEL.configHash]: 'hv' }) }],
      containers: [
        container('c3', 'shop-staging-web-2', { labels: { [LABEL.replica]: '2' }, State: 'exited', nets: { 'shop-staging_default': 'n2', bridge: 'nb' } }),
        container('c1', 'shop-staging-web-1', {
          labels: { [LABEL.config]: JSON.stringify(spec), [LABEL.applyId]: 'a1' },
          // matched by network id even when Docker reports a different name
          nets: { renamed: 'n1', 'shop-staging_default': 'n2' },
        }),
        container('c2', 'shop-staging-api-1', { labels: { [LABEL.service]: 'api', [LABEL.configHash]: 'hash-api' }, Image: 'nginx', State: 'created' }),
      ],
    });
    const { observed, warnings } = await observe(docker, P, E);
    expect(warnings).toEqual([]);
    expect(observed).toEqual({
      project: P,
      environment: E,
      containers: [
        { id: 'c2', name: 'shop-staging-api-1', service: 'api', replica: 1, configHash: 'hash-api', image: 'docker.io/library/nginx:latest', state: 'created', networks: [] },
        { id: 'c1', name: 'shop-staging-web-1', service: 'web', replica: 1, configHash: 'hash-web', config: spec, applyId: 'a1', image: 'docker.io/berth-test/app:1', state: 'running', networks: ['back', 'default'] },
        { id: 'c3', name: 'shop-staging-web-2', service: 'web', replica: 2, configHash: 'hash-web', image: 'docker.io/berth-test/app:1', state: 'exited', networks: ['default'] },
      ],
      networks: [
        { id: 'n1', dockerName: 'shop-staging_back', name: 'back', configHash: 'hn1' },
        { id: 'n2', dockerName: 'shop-staging_default', name: 'default', configHash: 'hn2' },
      ],
      volumes: [{ dockerName: 'shop-staging_data', name: 'data', configHash: 'hv' }],
    });
  });

  it('skips objects with missing or invalid berth labels and says why', async () => {
    const { docker } = stub({
      networks: [network('n9', 'stray', berth())],
      volumes: [{ Name: 'stray-vol', Labels: berth() }],
      containers: [
        container('aaaaaaaaaaaa1', 'bad-replica', { labels: { [LABEL.replica]: '0' } }),
        container('aaaaaaaaaaaa2', 'nan-replica', { labels: { [LABEL.replica]: '1.5' } }),
        container('aaaaaaaaaaaa3', 'no-service', { Labels: berth({ [LABEL.replica]: '1', [LABEL.configHash]: 'h' }) }),
        container('aaaaaaaaaaaa4', 'weird-state', { State: 'zombie' }),
        container('aaaaaaaaaaaa5', 'other-project', { Labels: { ...berth(), [LABEL.project]: 'elsewhere' } }),
      ],
    });
    const { observed, warnings } = await observe(docker, P, E);
    expect(observed.containers).toEqual([]);
    expect(observed.networks).toEqual([]);
    expect(observed.volumes).toEqual([]);
    expect(warnings).toEqual([
      `container bad-replica (aaaaaaaaaaaa): ${LABEL.replica} "0" is not a positive integer; ignored`,
      `container nan-replica (aaaaaaaaaaaa): ${LABEL.replica} "1.5" is not a positive integer; ignored`,
      `container no-service (aaaaaaaaaaaa): no ${LABEL.service} label; ignored`,
      'container weird-state (aaaaaaaaaaaa): unknown state "zombie"; ignored',
      `network stray (n9): no ${LABEL.network} label; ignored`,
      `volume stray-vol: no ${LABEL.volume} label; ignored`,
    ]);
  });

  it('gives the same result whatever order Docker lists things in', async () => {
    const cs = [1, 2, 3].map((r) => container(`c${r}`, `shop-staging-web-${r}`, { labels: { [LABEL.replica]: String(r) } }));
    const a = await observe(stub({ containers: cs }).docker, P, E);
    const b = await observe(stub({ containers: [...cs].reverse() }).docker, P, E);
    expect(b).toEqual(a);
  });

  it.each(['listContainers', 'listNetworks', 'listVolumes'])('turns a failing %s into an EngineError with Docker’s message', async (method) => {
    const err = await observe(stub({ fail: method }).docker, P, E).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect((err as EngineError).message).toMatch(/^list (containers|networks|volumes) of shop\/staging: boom: disk on fire$/);
    expect((err as EngineError).statusCode).toBe(500);
  });
});

describe('parseConfigLabel', () => {
  it('accepts a spec-shaped object and nothing else', () => {
    expect(parseConfigLabel('{"name":"web","image":"x"}')).toEqual({ name: 'web', image: 'x' });
    for (const bad of [undefined, '', '{', 'null', '[]', '"web"', '{"name":"web"}', '{"name":1,"image":"x"}']) expect(parseConfigLabel(bad)).toBeUndefined();
  });
});

describe('normalizeImageRef', () => {
  it.each([
    ['nginx', 'docker.io/library/nginx:latest'],
    ['nginx:1.27', 'docker.io/library/nginx:1.27'],
    ['berth-test/app:1', 'docker.io/berth-test/app:1'],
    ['docker.io/berth-test/app:1', 'docker.io/berth-test/app:1'],
    ['index.docker.io/library/redis', 'docker.io/library/redis:latest'],
    ['ghcr.io/org/app', 'ghcr.io/org/app:latest'],
    ['localhost/app:2', 'localhost/app:2'],
    ['registry:5000/app', 'registry:5000/app:latest'],
    [`nginx@sha256:${'a'.repeat(64)}`, `docker.io/library/nginx@sha256:${'a'.repeat(64)}`],
    [`sha256:${'b'.repeat(64)}`, `sha256:${'b'.repeat(64)}`],
  ])('%s → %s', (input, want) => expect(normalizeImageRef(input)).toBe(want));
});
