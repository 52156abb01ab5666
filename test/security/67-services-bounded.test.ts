// Round 16: the services of an environment were bounded only through their
// containers (limits.ts: MAX_CONTAINERS counts each service's replicas), and a
// service of `scale: 0` (or deploy.replicas: 0) has none. So a 1 MB compose
// file held 16,000 services: each one is still a resource of the plan, a row
// and a section of the PR comment and a node of the depends_on walk, and
// chained by depends_on they took the loader's cycle search past the stack
// (RangeError: the PR got "internal error" instead of a located problem) after
// holding the app's one thread for seconds. A service counts toward a bound of
// its own, whatever its replicas, checked as the files are read.
import { describe, expect, it } from 'vitest';
import { zeroReplicaChain } from '../../fixtures/hostile/generate.js';
import { loadCompose } from '../../src/compose/load.js';
import { ComposeError } from '../../src/errors.js';
import { MAX_SERVICES } from '../../src/compose/limits.js';

const load = (text: string) => loadCompose([{ path: 'compose.yml', text }], { project: 'p', environment: 'e', variables: {} });

describe('security 67: services are bounded whatever their replicas', () => {
  it('16,000 services of scale 0 chained by depends_on are a located error, not a stack overflow', () => {
    const text = zeroReplicaChain(16_000);
    expect(Buffer.byteLength(text)).toBeLessThan(1024 * 1024);
    let err: unknown;
    try {
      load(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ComposeError);
    expect(String((err as Error).message)).toMatch(/more than 1000 services/);
    expect((err as ComposeError).file).toBe('compose.yml');
    expect((err as ComposeError).line).toBe(1002);
  }, 60_000);

  it('as many services as the bound allows, of scale 0 or not, still plan', () => {
    expect(MAX_SERVICES).toBe(1000);
    const d = load(zeroReplicaChain(MAX_SERVICES - 1));
    expect(d.services.length).toBe(MAX_SERVICES);
  }, 60_000);
});
