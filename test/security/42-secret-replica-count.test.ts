// A replica count a secret variable fed cannot be masked: the diff masked
// `replicas`, but planToJson gave replicasBefore/replicasAfter as numbers and
// every format lists one step per replica (`service:web:1000`), which counts
// them (red-team round 5, F3). Such a count is refused at its line, quoting
// nothing of the value; a count from a plain variable still plans. So are a
// rollout's settings, which the plan's batches and gates show (round 6, F1).
import { describe, expect, it } from 'vitest';
import { loadCompose } from '../../src/compose/load.js';

const load = (compose: string) => () => loadCompose([{ path: 'compose.yml', text: compose }], { project: 'shop', environment: 'staging', variables: { DB_PASSWORD: '1000', N: '2' } });

describe('a replica count from a secret', () => {
  it('scale: and deploy.replicas from a secret variable are refused at their line, without the value', () => {
    const scale = load('services:\n  web:\n    image: nginx\n    scale: ${DB_PASSWORD}\n');
    expect(scale).toThrow(/^compose\.yml:4: services\.web\.scale: a replica count cannot come from a secret variable/);
    const replicas = load('services:\n  web:\n    image: nginx\n    deploy:\n      replicas: "${DB_PASSWORD:-1}"\n');
    expect(replicas).toThrow(/^compose\.yml:5: services\.web\.deploy\.replicas: a replica count cannot come from a secret variable/);
    for (const f of [scale, replicas]) expect(f).not.toThrow(/1000/);
  });

  it('a count from a plain variable plans, and a secret elsewhere under deploy: does not refuse it', () => {
    const d = load('services:\n  web:\n    image: nginx\n    deploy:\n      replicas: ${N}\n      resources: {limits: {memory: "${DB_PASSWORD}m"}}\n')();
    expect(d.services[0]!.spec.replicas).toBe(2);
  });

  it('a rollout setting from a secret is refused too: its batches, delays and gates are steps of the plan (red-team round 6)', () => {
    for (const [key, secret] of [['parallelism', '5'], ['delay', '7000ms'], ['monitor', '7000ms'], ['max_failure_ratio', '0.50']])
      for (const section of ['update_config', 'rollback_config']) {
        const text = `services:\n  web:\n    image: nginx\n    deploy:\n      replicas: 12\n      ${section}:\n        ${key}: "\${DB_PASSWORD}"\n`;
        const f = () => loadCompose([{ path: 'compose.yml', text }], { project: 'shop', environment: 'staging', variables: { DB_PASSWORD: secret! } });
        expect(f, `${section}.${key}`).toThrow(new RegExp(`^compose\\.yml:7: services\\.web\\.deploy\\.${section}\\.${key}: a rollout setting cannot come from a secret variable`));
        expect(f).not.toThrow(secret);
      }
    // from a plain variable it plans, in batches the plan shows
    expect(load('services:\n  web:\n    image: nginx\n    deploy:\n      replicas: 4\n      update_config: {parallelism: "${N}"}\n')().services[0]!.spec.rollout).toMatchObject({ update: { parallelism: 2 } });
  });
});
