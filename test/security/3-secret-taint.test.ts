// Issue 10 item 3: a value derived from a secret variable is shown only as a
// mask, whatever parsing does to it. Random secrets (quotes, backslashes, `=`,
// spaces, `/`, `:`, `-`, Unicode; 1–64 characters) are interpolated into every
// kind of service field; the plan (text, Markdown, JSON) and any error (message,
// Markdown comment) are searched.
//
// What "no fragment" means here: every third character of a secret (positions
// 0, 3, 6, …) is a MARKER, a CJK character that occurs nowhere else in the
// compose files, the config or berth's own text, and that no transformation
// berth does changes (it has no case, JSON and Markdown escaping keep it). Any
// 3 consecutive characters of a secret contain a marker, so an output that
// contains no marker contains neither the secret nor any fragment of it longer
// than 2 characters — a stronger check than "no 4+ character fragment", and
// one that cannot be satisfied by accident by text that is there anyway.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadCompose } from '../../src/compose/load.js';
import type { Policy } from '../../src/compose/policy.js';
import { isBerthError } from '../../src/errors.js';
import { secretVariableValues } from '../../src/plan/mask.js';
import { msg } from '../../src/github/messages.js';
import { reconcile } from '../../src/plan/reconcile.js';
import { planToJson, renderPlanMarkdown, renderPlanText } from '../../src/plan/render.js';
import { emptyObserved, simulate } from '../helpers/simulate.js';

const MARKERS = [...'秘密鍵錠隠暗号盗'];
const FILLER = [...'"\\= /:-\'aZ09.@#{}$,', 'é', 'ß', 'Ω', '\t'];

/** A secret of 1–64 characters with a marker at every position divisible by 3. */
const secretArb = fc
  .array(fc.tuple(fc.constantFrom(...MARKERS), fc.constantFrom(...FILLER), fc.constantFrom(...FILLER)), { minLength: 1, maxLength: 22 })
  .chain((triples) => fc.integer({ min: 1, max: Math.min(64, triples.length * 3) }).map((n) => triples.flat().join('').slice(0, n)));

/** Every kind of field a PR author can interpolate a secret into; `$V` is the secret variable. */
const FIELDS: Record<string, string[]> = {
  image: ['    image: "registry.example/app:$V"'],
  commandString: ['    command: "serve --flag $V tail"'],
  commandList: ['    command: ["serve", "--opt=$V", "x$V"]'],
  entrypoint: ['    entrypoint: ["/bin/run", "$V"]'],
  environmentMap: ['    environment:', '      PLAIN_VALUE: "pre$V"'],
  environmentList: ['    environment: ["PLAIN_VALUE=pre$V"]'],
  environmentListKey: ['    environment: ["$V=1", "OTHER=2"]'],
  labelsMap: ['    labels:', '      com.example.note: "$V"'],
  labelsList: ['    labels: ["com.example.note=$V"]'],
  ports: ['    ports: ["127.0.0.1:$V:80"]'],
  portsShort: ['    ports: ["$V"]'],
  bindVolume: ['    volumes: ["/srv/data/$V:/data"]'],
  namedVolume: ['    volumes: ["$V:/data"]'],
  volumeTarget: ['    volumes: ["cache:/data/$V"]'],
  devices: ['    devices: ["/dev/$V:/dev/x"]'],
  capAdd: ['    cap_add: ["$V"]'],
  user: ['    user: "$V"'],
  workingDir: ['    working_dir: "/app/$V"'],
  healthcheck: ['    healthcheck:', '      test: ["CMD", "probe", "$V"]'],
  healthcheckString: ['    healthcheck:', '      test: "probe $V"'],
  networkMode: ['    network_mode: "$V"'],
  pid: ['    pid: "$V"'],
  networks: ['    networks: ["$V"]'],
  dependsOn: ['    depends_on: ["$V"]'],
  restart: ['    restart: "$V"'],
  requiredDefault: ['    environment:', '      X_VALUE: "${UNSET_ONE:?missing $V}"'],
};

const POLICY: Policy = {
  allow_privileged: false,
  allow_host_network: false,
  allow_host_pid: false,
  allow_cap_add: ['NET_ADMIN'],
  allow_devices: true,
  allow_docker_socket: false,
  allow_container_namespaces: [],
  bind_mount_allowlist: ['/srv/data'],
};

function compose(field: string, variable: string): string {
  const lines = FIELDS[field]!.map((l) => l.replace(/\$V/g, `\${${variable}}`));
  const image = lines.some((l) => l.startsWith('    image:')) ? [] : ['    image: registry.example/web:1'];
  return ['services:', '  web:', ...image, ...lines, '  other:', '    image: registry.example/other:1', 'volumes:', '  cache: {}', ''].join('\n');
}

/** How a secret reaches interpolation: by a secret-looking name, or by being listed in secret_keys. */
const VARIABLES = [
  { name: 'DB_PASSWORD', secretKeys: [] as string[] },
  { name: 'SIGNING', secretKeys: ['SIGNING'] },
];

/** Every text berth would show about loading `text` with `secret` and planning it against `observedFrom`'s state. */
function outputsFor(text: string, variable: { name: string; secretKeys: string[] }, secret: string, previous?: string): string[] {
  const load = (value: string) =>
    loadCompose([{ path: 'compose.yml', text }], {
      project: 'shop',
      environment: 'staging',
      variables: { [variable.name]: value, PLAIN: 'x' },
      secretKeys: variable.secretKeys,
      policy: POLICY,
    });
  // What the bot and the CLI give the renderers: the values of the variables that are secret.
  const opts = { secretKeys: variable.secretKeys, secretValues: secretVariableValues({ [variable.name]: secret }, variable.secretKeys) };
  try {
    let observed = emptyObserved('shop', 'staging');
    if (previous !== undefined) {
      // The same field applied earlier with another (since rotated) secret.
      try {
        const before = load(previous);
        observed = simulate(reconcile(before, observed), observed);
      } catch {
        // the earlier value did not load either: nothing was running
      }
    }
    const plan = reconcile(load(secret), observed);
    return [
      renderPlanText(plan, opts),
      renderPlanMarkdown(plan, { environment: 'staging', target: 'local', ...opts }),
      JSON.stringify(planToJson(plan, opts)),
    ];
  } catch (err) {
    if (!isBerthError(err)) throw err;
    return [err.message, err.problem, err.hint ?? '', msg.configError(err)];
  }
}

const leaks = (outputs: string[]) => outputs.filter((o) => MARKERS.some((m) => o.includes(m)));

describe('item 3: a secret-derived value is masked whatever parsing does to it', () => {
  it('the markers occur nowhere else: a plan made without secrets shows none', () => {
    for (const field of Object.keys(FIELDS)) {
      const out = outputsFor(compose(field, 'PLAIN'), { name: 'OTHER_NAME', secretKeys: [] }, 'x');
      expect(leaks(out)).toEqual([]);
    }
  });

  it('the check is real: the same compose with a non-secret variable shows the value', () => {
    const shown = outputsFor(compose('commandList', 'PLAIN_VAR'), { name: 'PLAIN_VAR', secretKeys: [] }, '秘a"b');
    expect(leaks(shown).length).toBeGreaterThan(0);
  });

  it('the mask covers the tainted field only: its key, and the fields beside it, still read', () => {
    const [text] = outputsFor(compose('environmentList', 'DB_PASSWORD'), VARIABLES[0]!, '秘a"=b');
    expect(text).toContain('+ environment.PLAIN_VALUE: ••••••');
    expect(text).toContain('+ image: registry.example/web:1');
    const [cmd] = outputsFor(compose('commandString', 'SIGNING'), VARIABLES[1]!, '秘 x');
    expect(cmd).toContain('+ command: ••••••');
  });

  it('a secret read from a file whose path is a secret variable is refused with the real reason, quoting nothing of the path', () => {
    // frappe_docker's overrides/compose.mariadb-secrets.yaml: file: ${DB_PASSWORD_SECRETS_FILE:?…}
    const text = 'services:\n  web:\n    image: registry.example/web:1\n    secrets: [db]\nsecrets:\n  db:\n    file: "/srv/${DB_PASSWORD_FILE}"\n';
    fc.assert(
      fc.property(secretArb, (secret) => {
        const variable = { name: 'DB_PASSWORD_FILE', secretKeys: [] };
        const out = outputsFor(text, variable, secret);
        expect(leaks(out)).toEqual([]);
        expect(out[0]).toBe('compose.yml:7: secrets.db.file: secret db reads a file from the repository: secrets never live in the repository — store it as a secret of the environment named db (berth secrets set, and secrets: [db] in .github/berth.yml), which berth then uses in place of the file, or use environment: naming a secret variable');
      }),
      { numRuns: 60 },
    );
  });

  it('an error on a line that uses no secret, whose text holds a secret value, is withheld and says why, not blaming a secret-derived value (zabbix-docker)', () => {
    // the password is "zabbix", and the volume line (no variable at all) says /var/lib/zabbix
    const text = 'services:\n  web:\n    image: registry.example/web:1\n    environment:\n      DB_PASSWORD: ${DB_PASSWORD}\n    volumes: ["snmp:/var/lib/zabbix/snmptraps:roz"]\nvolumes:\n  snmp: {}\n';
    const variable = { name: 'DB_PASSWORD', secretKeys: [] };
    const withheld = outputsFor(text, variable, 'zabbix');
    expect(withheld.join('\n')).not.toContain('zabbix');
    expect(withheld[0]).toMatch(/^compose\.yml:6: services\.web\.volumes\[0\]: this value is invalid \(unsupported\); the message is not shown because its text contains the value of a secret variable/);
    expect(withheld[0]).not.toContain('derived from a secret');
    // another password: the real message
    expect(outputsFor(text, variable, 'other-password')[0]).toContain('mode "roz" is not one mode');
    // a secret's own line still says a secret-derived value is invalid
    const own = outputsFor(text.replace('"snmp:/var/lib/zabbix/snmptraps:roz"', '"snmp:/var/lib/${DB_PASSWORD}:roz"'), variable, 'zabbix');
    expect(own[0]).toMatch(/^compose\.yml:6: services\.web\.volumes\[0\]: a value derived from a secret variable is invalid \(unsupported\)/);
    expect(own.join('\n')).not.toContain('zabbix');
  });

  for (const field of Object.keys(FIELDS)) {
    it(`${field}: no secret character survives in plan text, Markdown, JSON or errors`, () => {
      fc.assert(
        fc.property(secretArb, secretArb, fc.constantFrom(...VARIABLES), fc.boolean(), (secret, previous, variable, rotated) => {
          const out = outputsFor(compose(field, variable.name), variable, secret, rotated ? previous : undefined);
          expect(leaks(out), `secret ${JSON.stringify(secret)}${rotated ? `, previously ${JSON.stringify(previous)}` : ''}`).toEqual([]);
        }),
        { numRuns: 60 },
      );
    });
  }
});
