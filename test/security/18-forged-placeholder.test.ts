// A server-side secret stands in the desired state as `berth-secret.NAME.HASH`
// (src/secrets/placeholder.ts) and the executor swaps it for the value in the
// Docker call. Only interpolating a secret the environment lists may produce
// one: a PR author who writes one could make the executor decrypt a secret the
// environment does not list. The written-text check is lexical, so a YAML
// escape or an interpolation default assembles a placeholder it never sees;
// the loaded state is checked as well.
import { describe, expect, it } from 'vitest';
import { loadCompose } from '../../src/compose/load.js';
import { placeholder, placeholdersIn } from '../../src/secrets/placeholder.js';

const HASH = '0123456789abcdef0123456789abcdef';
const LISTED = placeholder('DB_PASSWORD', HASH);
const FORGED_HASH = 'f'.repeat(32);
const load = (compose: string) =>
  loadCompose([{ path: 'compose.yml', text: compose }], { project: 'p', environment: 'staging', variables: { DB_PASSWORD: LISTED }, secretKeys: ['DB_PASSWORD'] });
const service = (lines: string[]) => ['services:', '  web:', '    image: berth-test/app:1', ...lines, ''].join('\n');

describe('placeholders not produced by a listed secret are refused, however they are assembled', () => {
  it('control: ${DB_PASSWORD} yields the listed placeholder', () => {
    const d = load(service(['    environment:', '      DB_URL: postgres://u:${DB_PASSWORD}@db/x']));
    expect(placeholdersIn(d.services[0]!.spec)).toEqual(new Map([['DB_PASSWORD', HASH]]));
  });

  const forged: [string, string][] = [
    ['a YAML \\x escape', service(['    environment:', `      A: "berth\\x2dsecret.ADMIN_TOKEN.${FORGED_HASH}"`])],
    ['a YAML \\u escape', service(['    command: ["echo", "berth-secret\\u002eADMIN_TOKEN.' + FORGED_HASH + '"]'])],
    ['an interpolation default', service(['    environment:', `      A: "\${UNSET:-berth-secret}.ADMIN_TOKEN.${FORGED_HASH}"`])],
    ['a default splitting the word, in a label', service(['    labels:', `      x: "\${UNSET:-berth}-secret.ADMIN_TOKEN.${FORGED_HASH}"`])],
    ['a listed name with a hash of the author\u2019s choosing', service(['    environment:', `      A: "berth\\x2dsecret.DB_PASSWORD.${FORGED_HASH}"`])],
    ['a config\u2019s inline content', [...service(['    configs: [motd]']).split('\n'), 'configs:', '  motd:', `    content: "\${UNSET:-berth-secret}.ADMIN_TOKEN.${FORGED_HASH}"`, ''].join('\n')],
    ['a volume name', [...service(['    volumes: [data:/data]']).split('\n'), 'volumes:', '  data:', `    name: "\${UNSET:-berth-secret}.ADMIN_TOKEN.${FORGED_HASH}"`, ''].join('\n')],
  ];
  for (const [how, compose] of forged) {
    it(`through ${how}`, () => {
      expect(() => load(compose)).toThrow(expect.objectContaining({ code: 'reserved_text', file: 'compose.yml' }));
    });
  }
});
