// Red-team round 11, H4: a service's lists cost one pass, however long. The
// loader kept one mount per target by scanning the mounts kept so far for each
// entry, and merging a service with the one it extends (or an override file's)
// looked each item of the one list up by a scan of the other: the square of a
// long list, or the product of two. 40,000 mounts (630 KB) took 6 s; a service
// extending one that publishes "1-65535", adding "1-65535/udp" (a 150-byte
// file), made 4 billion comparisons before the environment's port bound could
// count them — the app's one thread held for more than ten minutes.
import { describe, expect, it } from 'vitest';
import { loadCompose } from '../../src/compose/load.js';

const load = (text: string) => loadCompose([{ path: 'compose.yml', text }], { project: 'p', environment: 'e', variables: {} });

describe('service lists are merged and de-duplicated in one pass', () => {
  it('40,000 mounts load at once, the later of two entries for a target kept in the earlier one\'s place', () => {
    const text = `services:\n  web:\n    image: nginx:1\n    volumes:\n      - /dup:/dup\n${Array.from({ length: 40_000 }, (_, i) => `      - /t${i}\n`).join('')}      - /dup2:/dup:ro\n`;
    const t = Date.now();
    const vols = load(text).services[0]!.spec.volumes;
    expect(Date.now() - t).toBeLessThan(4_000);
    expect(vols).toHaveLength(40_001);
    expect(vols.find((m) => m.target === '/dup')).toMatchObject({ source: '/dup2', readOnly: true });
  }, 30_000);

  it('a service extending another, each publishing a range of 20,000 ports, loads at once', () => {
    const t = Date.now();
    const d = load(`services:\n  a:\n    image: nginx:1\n    ports: ["1-20000"]\n  b:\n    extends: a\n    ports: ["1-20000/udp"]\n`);
    expect(Date.now() - t).toBeLessThan(5_000);
    expect(d.services.find((s) => s.spec.name === 'b')!.spec.ports).toHaveLength(40_000);
  }, 120_000);

  it('merging still replaces a port or mount of the same key in place, and appends the rest', () => {
    const d = load(`services:\n  a:\n    image: nginx:1\n    ports: ["80", "443"]\n    volumes: [/x:/x, /y:/y]\n  b:\n    extends: a\n    ports: ["443", "8080"]\n    volumes: [/z:/x:ro, /w:/w]\n`);
    const b = d.services.find((s) => s.spec.name === 'b')!.spec;
    expect(b.ports.map((p) => p.target)).toEqual([80, 443, 8080]);
    expect(b.volumes.map((m) => `${m.source}:${m.target}${m.readOnly ? ':ro' : ''}`)).toEqual(['/w:/w', '/z:/x:ro', '/y:/y']);
  });
});
