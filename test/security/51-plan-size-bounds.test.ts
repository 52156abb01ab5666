// Red-team round 11, H3: what the containers of an environment refer to is
// bounded with the containers. Replicas (up to 1,000) multiply what each
// container is attached to: each replica on each network is a step of the plan
// (ConnectNetwork, a Docker call), and each volume it mounts and each service
// it depends on an edge that the plan's text lists on the container's line. One
// anchored list reused makes the product cheap to write: a 17 KB file of 1,000
// networks and 1,000 replicas held the app's one thread 17 s and 1.7 GB before
// the planner ran out of stack; 20,000 volumes and 1,000 replicas (550 KB) made
// a 110 MB plan comment, and a larger file ran the process out of memory.
import { describe, expect, it } from 'vitest';
import { loadCompose } from '../../src/compose/load.js';
import { reconcile } from '../../src/plan/reconcile.js';
import { renderPlanMarkdown } from '../../src/plan/render.js';
import { emptyObserved } from '../helpers/simulate.js';
import { networkFlood } from '../../fixtures/hostile/generate.js';

const plan = (text: string) => {
  const d = loadCompose([{ path: 'compose.yml', text }], { project: 'p', environment: 'e', variables: {} });
  return renderPlanMarkdown(reconcile(d, emptyObserved('p', 'e')), { environment: 'e', target: 'local' });
};

describe('replicas times what each container refers to is bounded', () => {
  it('1,000 replicas on 1,000 networks (17 KB) are refused at the networks, at once', () => {
    const t = Date.now();
    expect(() => plan(networkFlood(1_000, 1_000))).toThrow(/compose\.yml:\d+: services\.web\.networks.*attach their containers to networks more than 10000 times together \(service web makes 1000000/);
    expect(Date.now() - t).toBeLessThan(5_000);
  }, 30_000);

  it('1,000 replicas mounting 3,000 volumes are refused at the replicas, at once', () => {
    const vols = Array.from({ length: 3_000 }, (_, i) => `v${i}`);
    const text = `x-v: &v [${vols.map((v) => `${v}:/${v}`).join(', ')}]\nservices:\n  web:\n    image: nginx:1\n    scale: 1000\n    volumes: *v\nvolumes:\n${vols.map((v) => `  ${v}: {}\n`).join('')}`;
    const t = Date.now();
    expect(() => plan(text)).toThrow(/services\.web\.scale: the containers of this environment refer to more than 50000 mounts, dependencies and files together/);
    expect(Date.now() - t).toBeLessThan(5_000);
  }, 30_000);

  it('a large real-sized environment still plans: 100 services of 10 replicas, each on 3 networks with 5 volumes and 4 dependencies', () => {
    const svc = (i: number) => `  s${i}:\n    image: nginx:1\n    scale: 10\n    networks: [a, b, c]\n    volumes: [v1:/1, v2:/2, v3:/3, v4:/4, v5:/5]\n${i >= 4 ? `    depends_on: [s0, s1, s2, s3]\n` : ''}`;
    const md = plan(`services:\n${Array.from({ length: 100 }, (_, i) => svc(i)).join('')}networks: {a: {}, b: {}, c: {}}\nvolumes: {v1: {}, v2: {}, v3: {}, v4: {}, v5: {}}\n`);
    expect(md).toMatch(/\*\*\d+ to create/);
    expect(md).toContain('service <code>s99</code>');
  }, 30_000);
});
