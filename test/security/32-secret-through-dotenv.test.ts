// A secret variable's value is tracked from interpolation on (test 3) — but a
// `.env` file interpolates too, and docker compose lets one relay a value:
// `RELAY=${DB_PASSWORD}` in the PR's `.env` (or an included file's `.env`, or
// an env_file) and `command: serve ${RELAY}` in compose.yml. The loader saw
// only RELAY, which is not secret by name, so the command was not tainted: the
// plan showed it split into words, and the outbound search for the secret as a
// whole found nothing to mask. A variable whose `.env` value used a secret
// variable is secret itself (chains too), and an env_file entry whose value
// used one taints the environment key it sets. Same marker method as test 3:
// no output holds any marker, so no fragment of the secret longer than 2
// characters.
import { describe, expect, it } from 'vitest';
import { loadCompose } from '../../src/compose/load.js';
import { isBerthError } from '../../src/errors.js';
import { msg } from '../../src/github/messages.js';
import { secretVariableValues } from '../../src/plan/mask.js';
import { reconcile } from '../../src/plan/reconcile.js';
import { planToJson, renderPlanMarkdown, renderPlanText } from '../../src/plan/render.js';
import { emptyObserved } from '../helpers/simulate.js';

/** A marker at every third position (test 3's method), and spaces, so a command splits it into words. */
const SECRET = '秘a b密c d鍵e f錠';
const MARKERS = [...'秘密鍵錠'];

const relay = (use: string) => ['services:', '  web:', '    image: registry.example/web:1', ...use.split('\n').map((l) => `    ${l}`), ''].join('\n');

/** Fewer than 4 characters: masked where tracked, never searched for in free text (README), so only the taint can mask it. */
const SHORT = '秘a密';

const CASES: Record<string, { compose: string; files: Record<string, string>; secret?: string }> = {
  rootDotenv: { compose: relay('command: "serve ${RELAY} tail"'), files: { '.env': 'RELAY=${DB_PASSWORD}\n' } },
  rootDotenvChained: { compose: relay('command: "serve ${SECOND} tail"'), files: { '.env': 'FIRST="x ${DB_PASSWORD}"\nSECOND=${FIRST}\n' } },
  rootDotenvIntoCapAdd: { compose: relay('cap_add: ["${RELAY}"]'), files: { '.env': 'RELAY=${DB_PASSWORD}\n' } },
  includedDotenv: {
    compose: ['include: [sub/inc.yml]', ''].join('\n'),
    files: { 'sub/.env': 'RELAY=${DB_PASSWORD}\n', 'sub/inc.yml': relay('command: "serve ${RELAY} tail"') },
  },
  envFileIntoEnvironment: { compose: relay('env_file: app.env'), files: { 'app.env': 'PLAIN_SETTING="pre ${DB_PASSWORD}"\n' } },
  envFileShortSecret: { compose: relay('env_file: app.env'), files: { 'app.env': 'PLAIN_SETTING=${DB_PASSWORD}\n' }, secret: SHORT },
  rootDotenvShortSecret: { compose: relay('environment: {PLAIN_SETTING: "${RELAY}"}'), files: { '.env': 'RELAY=${DB_PASSWORD}\n' }, secret: SHORT },
  // A ${VAR} in a .env or env_file finds the environment's variable before the file's own key (compose-go's
  // order): a decoy of the secret's name in the PR's file no longer stands in for it, so the relayed value is
  // the real secret, and it must be tracked as one.
  rootDotenvShadowed: { compose: relay('command: "serve ${RELAY} tail"'), files: { '.env': 'DB_PASSWORD=decoy\nRELAY=${DB_PASSWORD}\n' } },
  envFileShadowed: { compose: relay('env_file: app.env'), files: { 'app.env': 'DB_PASSWORD=decoy\nPLAIN_SETTING="pre ${DB_PASSWORD}"\n' } },
  // A later env_file finds an earlier one's keys: a relay through two files.
  envFileAcrossFiles: { compose: relay('env_file: [a.env, b.env]'), files: { 'a.env': 'RELAY=${DB_PASSWORD}\n', 'b.env': 'PLAIN_SETTING="pre ${RELAY}"\n' } },
};

function outputsFor(c: { compose: string; files: Record<string, string> }, variables: Record<string, string>): string[] {
  const opts = { secretKeys: [] as string[], secretValues: secretVariableValues(variables, []) };
  try {
    const desired = loadCompose([{ path: 'compose.yml', text: c.compose }], {
      project: 'shop',
      environment: 'staging',
      variables,
      sources: new Map(Object.entries(c.files)),
      policy: { allow_privileged: false, allow_host_network: false, allow_host_pid: false, allow_cap_add: ['ALL'], allow_devices: false, allow_docker_socket: false, allow_container_namespaces: [], bind_mount_allowlist: [] },
    });
    const plan = reconcile(desired, emptyObserved('shop', 'staging'));
    return [renderPlanText(plan, opts), renderPlanMarkdown(plan, { environment: 'staging', target: 'local', ...opts }), JSON.stringify(planToJson(plan, opts))];
  } catch (err) {
    if (!isBerthError(err)) throw err;
    return [err.message, err.problem, err.hint ?? '', msg.configError(err)];
  }
}

const leaks = (outputs: string[]) => outputs.filter((o) => MARKERS.some((m) => o.includes(m))).map((o) => o.slice(0, 400));

describe('a secret relayed through a .env or env_file variable is still masked', () => {
  for (const [name, c] of Object.entries(CASES)) {
    it(`${name}: the plan shows no fragment of the secret`, () => {
      // The markers come only from the secret; and the check is real: relayed from a variable that is not secret, the value shows.
      expect(leaks(outputsFor(c, { DB_PASSWORD: 'x' }))).toEqual([]);
      const plain = outputsFor({ ...c, files: Object.fromEntries(Object.entries(c.files).map(([k, v]) => [k, v.replace(/DB_PASSWORD/g, 'ORDINARY_VALUE')])) }, { ORDINARY_VALUE: c.secret ?? SECRET });
      expect(leaks(plain).length).toBeGreaterThan(0);
      expect(leaks(outputsFor(c, { DB_PASSWORD: c.secret ?? SECRET }))).toEqual([]);
    });
  }

  it('a .env value the berth.yml variables override relays nothing: that variable is not masked', () => {
    const [text] = outputsFor(CASES.rootDotenv!, { DB_PASSWORD: SECRET, RELAY: 'visible' });
    expect(text).toContain('visible');
  });
});

// An env_file's ${VAR} finds the service's own environment: too (compose-go since 2025): a relay through it.
describe('a secret relayed from a service\'s environment: into its env_file is still masked', () => {
  const THROUGH: Record<string, { compose: string; files: Record<string, string> }> = {
    environmentIntoEnvFile: { compose: relay('environment: {RELAY: "${DB_PASSWORD}"}\nenv_file: app.env'), files: { 'app.env': 'PLAIN_SETTING="pre ${RELAY} tail"\n' } },
    environmentListIntoEnvFile: { compose: relay('environment: ["RELAY=${DB_PASSWORD}"]\nenv_file: app.env'), files: { 'app.env': 'PLAIN_SETTING="pre ${RELAY} tail"\nCHAINED=${PLAIN_SETTING}\n' } },
    // a decoy of the secret's name in environment: does not stand in for it (the variable is looked up first)
    environmentDecoy: { compose: relay('environment: {DB_PASSWORD: decoy}\nenv_file: app.env'), files: { 'app.env': 'PLAIN_SETTING="pre ${DB_PASSWORD} tail"\n' } },
  };
  for (const [name, c] of Object.entries(THROUGH)) {
    it(`${name}: the plan shows no fragment of the secret`, () => {
      expect(leaks(outputsFor(c, { DB_PASSWORD: SECRET }))).toEqual([]);
      // the check is real: from a variable that is not secret, the relayed value shows
      const rename = (t: string) => t.replace(/DB_PASSWORD/g, 'ORDINARY_VALUE');
      const plain = outputsFor({ compose: rename(c.compose), files: Object.fromEntries(Object.entries(c.files).map(([k, v]) => [k, rename(v)])) }, { ORDINARY_VALUE: SECRET });
      expect(leaks(plain).length).toBeGreaterThan(0);
      expect(plain[0]).toMatch(/PLAIN_SETTING[^\n]*秘/);
    });
  }
});
