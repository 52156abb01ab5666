// A secret's value is masked by its taint (test 3), not only by searching
// text for it — because parsing splits, trims and cleans up what a PR author
// interpolates. These attacks (a red-team pass over the loader) reached the
// plan or an error with the taint lost on the way:
// - the COMPOSE_PROFILES note named the profiles, split at commas and trimmed;
// - `extends` recorded the taint against the base service, so the extending
//   service showed the inherited command split into words;
// - an error located at a list's key (`sysctls:`, `extra_hosts:`,
//   `include[0]`) quoted an item a line below, cut at `=` or `:`, or a path
//   normalised (`S/..` → the part before the last `/`);
// - a secret under `deploy:` tainted only `replicas`, so memory limits and the
//   rest of what deploy sets showed in clear.
// Same marker method as test 3: no output holds any marker.
import { describe, expect, it } from 'vitest';
import { loadCompose, NeedRepoFiles } from '../../src/compose/load.js';
import { DENY_ALL, type Policy } from '../../src/compose/policy.js';
import type { RepoTree } from '../../src/compose/repository-files.js';
import { isBerthError } from '../../src/errors.js';
import { msg } from '../../src/github/messages.js';
import { secretVariableValues } from '../../src/plan/mask.js';
import { reconcile } from '../../src/plan/reconcile.js';
import { planToJson, renderPlanMarkdown, renderPlanText } from '../../src/plan/render.js';
import { emptyObserved } from '../helpers/simulate.js';

const MARKERS = [...'秘密鍵錠'];

const POLICY: Policy = DENY_ALL;

interface Case {
  files: Record<string, string>;
  secret: string;
  /** repository files at the PR head (as the app lists them: binds of them are copies) */
  tree?: string[];
  policy?: Policy;
  /** what must not appear besides the markers (a value the secret parses to) */
  alsoHidden?: string[];
}

const svc = (lines: string) => ['services:', '  web:', '    image: registry.example/web:1', ...lines.split('\n').map((l) => `    ${l}`), ''].join('\n');

const CASES: Record<string, Case> = {
  // profile names are plain words, so this secret is too: its pieces are what must not show
  profilesNote: {
    files: { 'compose.yml': 'services:\n  web:\n    image: registry.example/web:1\n  extra:\n    image: registry.example/web:1\n    profiles: [zulu]\n', '.env': 'COMPOSE_PROFILES=${DB_PASSWORD}\n' },
    secret: 'alphaq, bravoq ,charlieq',
    alsoHidden: ['alphaq', 'bravoq', 'charlieq'],
  },
  extendsOtherFile: {
    files: { 'compose.yml': 'services:\n  web:\n    extends: {file: base.yml, service: base}\n', 'base.yml': 'services:\n  base:\n    image: registry.example/web:1\n    command: "serve ${DB_PASSWORD}"\n' },
    secret: 'h秘 S密 x鍵',
  },
  extendsSameFileChain: {
    files: {
      'compose.yml':
        'services:\n  base:\n    image: registry.example/web:1\n    profiles: [off]\n    command: "serve ${DB_PASSWORD}"\n  middle:\n    extends: base\n    profiles: [off]\n  web:\n    extends: middle\n    profiles: !reset []\n',
    },
    secret: 'h秘 S密 x鍵',
  },
  sysctlItemLine: { files: { 'compose.yml': svc('sysctls:\n  - "${DB_PASSWORD}"') }, secret: 'kernel.秘密鍵=1' },
  extraHostsItemLine: { files: { 'compose.yml': svc('extra_hosts:\n  - "${DB_PASSWORD}"') }, secret: 'h秘:S密=x鍵' },
  includePathNormalised: { files: { 'compose.yml': 'include:\n  - path:\n      - "${DB_PASSWORD}/.."\n' + svc('').split('\n').slice(0, 3).join('\n') + '\n' }, secret: 'h秘/S密' },
  extendsFileNormalised: { files: { 'compose.yml': 'services:\n  web:\n    extends:\n      file: "${DB_PASSWORD}/../"\n      service: base\n' }, secret: 'h秘/S密' },
  configFileNormalised: { files: { 'compose.yml': svc('configs: [c]') + 'configs:\n  c:\n    file: "${DB_PASSWORD}/.."\n' }, secret: 'h秘/S密' },
  deployMemory: { files: { 'compose.yml': svc('deploy:\n  resources:\n    limits:\n      memory: "${DB_PASSWORD}"') }, secret: '7341m', alsoHidden: ['7697596416', '7341'] },
  // Red team of 2026-12-05 (evening): an error located at another, untainted line quoted a value built from the
  // secret, cleaned up on the way (`//` made `/`, a last segment dropped by `/..`), so no search for the whole value found it.
  otherBindQuotesNormalisedSource: {
    files: { 'compose.yml': svc('volumes:\n  - type: bind\n    source: "/srv/${DB_PASSWORD}/.."\n    target: /data\n  - ./app.conf:/data/app.conf') },
    tree: ['app.conf'],
    policy: { ...DENY_ALL, bind_mount_allowlist: ['/srv'] },
    secret: 'postgres://us秘密:pa鍵錠ss@ho秘密st/app',
  },
  otherConfigQuotesNormalisedTarget: {
    files: { 'compose.yml': svc('configs:\n  - {source: plain, target: /etc/app}\n  - {source: other, target: "/etc/app/${DB_PASSWORD}"}') + 'configs: {plain: {content: a}, other: {content: b}}\n' },
    secret: 'postgres://us秘密:pa鍵錠ss@ho秘密st/app',
  },
  // the plan's JSON (berth plan --format json) showed a config's target built from the secret: configs and secrets were no masked field
  configTargetInPlan: {
    files: { 'compose.yml': svc('configs:\n  - {source: other, target: "/etc/app/${DB_PASSWORD}"}') + 'configs: {other: {content: b}}\n' },
    secret: 'postgres://us秘密:pa鍵錠ss@ho秘密st/app',
  },
  startFirstQuotesPort: {
    files: { 'compose.yml': svc('ports: ["${DB_PASSWORD}"]\ndeploy:\n  update_config:\n    order: start-first') },
    secret: '127.0.0.1:48213:80',
    alsoHidden: ['48213'],
  },
  // Keys honoured on 2026-12-06: a volume's subpath (now in the plan's mount line), a MAC address, a start interval.
  volumeSubpath: { files: { 'compose.yml': svc('volumes:\n  - {type: volume, source: data, target: /d, volume: {subpath: "${DB_PASSWORD}"}}') + 'volumes:\n  data: {}\n' }, secret: 'a秘/b密鍵' },
  macAddress: { files: { 'compose.yml': svc('mac_address: "${DB_PASSWORD}"') }, secret: '02:42:AC:11:7E:5D', alsoHidden: ['02:42:ac:11:7e:5d', '7e:5d'] },
  startInterval: { files: { 'compose.yml': svc('healthcheck:\n  test: [CMD, "true"]\n  start_interval: "${DB_PASSWORD}"') }, secret: '7341ms', alsoHidden: ['7341'] },
  // Red team of 2026-12-06: a refusal located at a clean line quoted another line's value, built from the secret and
  // normalised on the way (the MAC lower-cased with colons; the replicas count read as a number).
  startFirstQuotesMac: { files: { 'compose.yml': svc('mac_address: "${DB_PASSWORD}"\ndeploy:\n  update_config:\n    order: start-first') }, secret: '02-42-AC-11-7E-5D', alsoHidden: ['02:42:ac:11:7e:5d', '7e:5d'] },
  startFirstQuotesNormalisedPort: { files: { 'compose.yml': svc('ports: ["${DB_PASSWORD}:80"]\ndeploy:\n  update_config:\n    order: start-first') }, secret: '048213', alsoHidden: ['48213'] },
  replicasQuotedByMac: { files: { 'compose.yml': svc('mac_address: 02:42:ac:11:00:02\ndeploy:\n  replicas: "${DB_PASSWORD}"') }, secret: '0250', alsoHidden: ['250'] },
  replicasQuotedByName: { files: { 'compose.yml': svc('container_name: shop-web\ndeploy:\n  replicas: "${DB_PASSWORD}"') }, secret: '0250', alsoHidden: ['250'] },
};

/** The head's listing of `paths`, as GitHub gives it (every one a 10-byte file, mode 100644). */
const treeOf = (paths: string[]): RepoTree => ({
  mode: (p) => (paths.includes(p) ? '100644' : undefined),
  under: (dir) => paths.filter((p) => dir === '' || p.startsWith(`${dir}/`)).sort(),
  complete: true,
  size: (p) => (paths.includes(p) ? 10 : undefined),
});

function outputsFor(files: Record<string, string>, variables: Record<string, string>, c: Pick<Case, 'tree' | 'policy'> = {}): string[] {
  const opts = { secretKeys: [] as string[], secretValues: secretVariableValues(variables, []) };
  const { 'compose.yml': compose, ...rest } = files;
  try {
    const load = (repoFiles: Map<string, string | undefined>) =>
      loadCompose([{ path: 'compose.yml', text: compose! }], { project: 'shop', environment: 'staging', variables, sources: new Map(Object.entries(rest)), repoFiles, policy: c.policy ?? POLICY, ...(c.tree ? { repoTree: treeOf(c.tree) } : {}) });
    let desired;
    try {
      desired = load(new Map());
    } catch (e) {
      // as loadComposeReading does: the config files asked for are read (here: none exists) and the load runs again
      if (!(e instanceof NeedRepoFiles)) throw e;
      desired = load(new Map(e.paths.map((p) => [p, c.tree?.includes(p) ? '0123456789' : undefined])));
    }
    const plan = reconcile(desired, emptyObserved('shop', 'staging'));
    return [
      renderPlanText(plan, opts),
      renderPlanMarkdown(plan, { environment: 'staging', target: 'local', ...opts, ...(desired.notes ? { notes: desired.notes } : {}) }),
      JSON.stringify(planToJson(plan, opts)),
      ...(desired.notes ?? []),
    ];
  } catch (err) {
    if (!isBerthError(err)) throw err;
    return [err.message, err.problem, err.hint ?? '', msg.configError(err)];
  }
}

const hidden = (c: Case) => [...MARKERS, ...(c.alsoHidden ?? [])];
const leaks = (c: Case, outputs: string[]) => outputs.filter((o) => hidden(c).some((m) => o.includes(m))).map((o) => o.slice(0, 300));

describe('a secret is masked whatever structure carries it', () => {
  for (const [name, c] of Object.entries(CASES)) {
    it(`${name}: no output holds any part of the secret`, () => {
      expect(leaks(c, outputsFor(c.files, { DB_PASSWORD: c.secret }, c))).toEqual([]);
      // the check is real: the same files with a variable that is not secret show it
      const rename = (t: string) => t.replace(/DB_PASSWORD/g, 'ORDINARY_VALUE');
      const plain = outputsFor(Object.fromEntries(Object.entries(c.files).map(([k, v]) => [k, rename(v)])), { ORDINARY_VALUE: c.secret }, c);
      expect(leaks(c, plain).length).toBeGreaterThan(0);
    });
  }
});
