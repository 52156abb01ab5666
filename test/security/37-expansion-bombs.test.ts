// Small inputs that made the loader work without bound (red team of 2026-12-05, evening): each ran the
// stack out ("planning failed — Maximum call stack size exceeded" on the PR) or held the event loop, the
// whole app with it, for a minute. Each is now refused at its line, or read in linear time. No timing is
// asserted: the suite's timeout (10 s a case, where the old code took minutes) is what catches a relapse.
import { describe, expect, it } from 'vitest';
import { loadCompose } from '../../src/compose/load.js';
import { DENY_ALL } from '../../src/compose/policy.js';
import { parseDotenv } from '../../src/compose/dotenv.js';
import { errorOf as refusal } from '../helpers/errors.js';

const WEB = 'services:\n  web:\n    image: berth-test/app:1\n    environment:\n      - A=${A:-x}\n';
const load = (text: string, sources: Record<string, string> = {}) =>
  loadCompose([{ path: 'compose.yml', text }], { project: 'p', environment: 'e', variables: {}, sources: new Map(Object.entries(sources)), policy: DENY_ALL });

describe('expansion bombs are refused at their line or read in linear time', () => {
  it('a .env default nested 20,000 deep is refused at its line, quoted short', { timeout: 10_000 }, () => {
    const e = refusal(() => load(WEB, { '.env': `A=${'${B:-'.repeat(20_000)}x${'}'.repeat(20_000)}\n` }));
    expect(e).toMatchObject({ file: '.env', line: 1 });
    expect(e.problem).toContain('defaults nested more than 32 deep');
    expect(e.message.length).toBeLessThan(1000);
  });

  it('a file including the next twice, seventeen deep (1.3 KB), is refused at the include that passes 256 files', { timeout: 10_000 }, () => {
    const sources: Record<string, string> = {};
    for (let i = 1; i <= 17; i++) sources[`l${i}.yml`] = `${i < 17 ? `include: [l${i + 1}.yml, l${i + 1}.yml]\n` : ''}services:\n  s${i}:\n    image: berth-test/app:1\n`;
    const e = refusal(() => load(`include: [l1.yml, l1.yml]\n${WEB}`, sources));
    expect(e.problem).toBe('the includes bring in more than 256 files (a file included again counts again)');
    expect(e.line).toBe(1);
  });

  it('an extends chain of 8,000 services is refused where it passes 64', { timeout: 10_000 }, () => {
    let text = 'services:\n';
    for (let i = 1; i <= 8000; i++) text += `  s${i}: {extends: s${i + 1}}\n`;
    text += '  s8001:\n    image: berth-test/app:1\n';
    const e = refusal(() => load(text));
    expect(e).toMatchObject({ code: 'too_deep', file: 'compose.yml' });
    expect(e.problem).toBe('extends chains more than 64 services');
  });

  it('an .env of 8,000 lines each using a variable, and a quoted value 40,000 lines long, are read in linear time', { timeout: 10_000 }, () => {
    const lines = Array.from({ length: 8000 }, (_, i) => `K${i}=$A-${i}`).join('\n');
    const read = parseDotenv(`A=a\n${lines}\n`);
    expect(read.get('K7999')?.value).toBe('a-7999');
    const long = parseDotenv(`Q="${'x\n'.repeat(40_000)}"\n`);
    expect(long.get('Q')?.value.length).toBe(80_000);
    // and through the loader, as the app reads a PR's .env
    expect(load(WEB, { '.env': `A=a\n${lines}\n` }).services[0]!.spec.environment).toEqual({ A: 'a' });
  });

  it('eight hundred services extending one chain of sixty in another file: each its own service, the chain resolved once for all', { timeout: 10_000 }, () => {
    let b = 'services:\n';
    for (let i = 1; i < 60; i++) b += `  s${i}: {extends: s${i + 1}}\n`;
    b += '  s60:\n    image: berth-test/app:1\n';
    let top = 'services:\n';
    for (let i = 0; i < 800; i++) top += `  w${i}: {extends: {file: b.yml, service: s1}}\n`;
    const services = load(top, { 'b.yml': b }).services;
    expect(services.map((x) => x.spec.name).sort()).toEqual(Array.from({ length: 800 }, (_, i) => `w${i}`).sort());
    expect(new Set(services.map((x) => x.spec.image))).toEqual(new Set(['docker.io/berth-test/app:1']));
  });
});
