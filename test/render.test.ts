import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MASK } from '../src/plan/mask.js';
import type { DesiredState, ObservedState, ServiceSpec } from '../src/model/model.js';
import type { Plan } from '../src/plan/plan.js';
import { planToString } from '../src/plan/plan.js';
import { reconcile } from '../src/plan/reconcile.js';
import { diffSpecs, escapeMarkdown, planToJson, renderPlanMarkdown, renderPlanText, sanitizeLine, unsetVariablesText } from '../src/plan/render.js';
import { GITHUB_COMMENT_LIMIT, splitMarkdown } from '../src/github/split-comment.js';
import { emptyObserved, simulate } from './helpers/simulate.js';
import { net, spec, state, vol } from './helpers/specs.js';

/** Values planted in secret-keyed fields: none may ever appear in any rendering. */
const PLANTED = {
  dbOld: 'planted-db-pass-OLD-7f3a',
  dbNew: 'planted-db-pass-NEW-91c2',
  pg: 'planted-pg-root-55d1',
  apiToken: 'planted-api-token-aa01',
  redis: 'planted-redis-pw-b7e0',
  sentry: 'planted-sentry-token-c3f9',
  urlPass: 'planted-url-pass-0d4e',
  hcToken: 'planted-hc-token-e2e2',
};

const health = { test: ['CMD', 'wget', '-q', '--header', 'X-Token', '--token', PLANTED.hcToken, 'http://localhost/health'], intervalMs: 10_000, timeoutMs: 3000, retries: 3, startPeriodMs: 5000 };

function realisticBefore(): DesiredState {
  return state(
    [
      spec('web', {
        image: 'docker.io/library/nginx:1.27',
        command: undefined,
        ports: [{ target: 80, published: 8080, protocol: 'tcp' }],
        environment: { DB_HOST: 'db', DB_PASSWORD: PLANTED.dbOld, SENTRY_AUTH_TOKEN: PLANTED.sentry },
        dependsOn: [{ service: 'api', condition: 'service_healthy' }],
      }),
      spec('api', {
        command: ['api', 'serve', `--api-token=${PLANTED.apiToken}`],
        environment: { DATABASE_URL: `postgres://app:${PLANTED.urlPass}@db:5432/app`, LOG_LEVEL: 'info' },
        networks: ['back', 'default'],
        dependsOn: [{ service: 'db', condition: 'service_healthy' }],
        healthcheck: health,
      }),
      spec('db', {
        image: 'docker.io/library/postgres:16',
        command: undefined,
        environment: { POSTGRES_PASSWORD: PLANTED.pg },
        networks: ['back'],
        volumes: [{ type: 'volume', source: 'data', target: '/var/lib/postgresql/data', readOnly: false }],
        healthcheck: { test: ['CMD', 'pg_isready'], intervalMs: 5000, timeoutMs: 3000, retries: 5, startPeriodMs: 0 },
      }),
      spec('worker', { labels: { team: 'core' } }),
    ],
    [net('back'), net('default')],
    [vol('data')],
    'shop',
    'production',
  );
}

function realisticAfter(): DesiredState {
  const b = realisticBefore();
  const specs = b.services.map((s) => s.spec).filter((s) => s.name !== 'worker');
  const web = specs.find((s) => s.name === 'web')!;
  Object.assign(web, {
    image: 'docker.io/library/nginx:1.28',
    replicas: 2,
    ports: [...web.ports, { target: 443, published: 8443, protocol: 'tcp' }],
    environment: { ...web.environment, DB_HOST: 'db-primary', DB_PASSWORD: PLANTED.dbNew },
    labels: { 'traefik.enable': 'true' },
  });
  specs.push(spec('cache', { image: 'docker.io/library/redis:7', command: ['redis-server', '--requirepass', PLANTED.redis], networks: ['back'] }));
  return state(specs, [net('back', { internal: true }), net('default')], [vol('data', { labels: { backup: 'daily' } })], 'shop', 'production');
}

/** The host after applying `before`, then someone stopped the api container. */
function realisticHost(): ObservedState {
  const before = realisticBefore();
  const host = simulate(reconcile(before, emptyObserved('shop', 'production')), emptyObserved('shop', 'production'));
  host.containers.find((c) => c.service === 'api')!.state = 'exited';
  return host;
}

const realisticPlan = (): Plan => reconcile(realisticAfter(), realisticHost());

const FIXTURES = fileURLToPath(new URL('../fixtures/render/', import.meta.url));

function golden(name: string, actual: string) {
  const file = `${FIXTURES}${name}`;
  if (process.env.UPDATE_GOLDEN === '1') {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, actual);
  }
  if (!existsSync(file)) throw new Error(`golden file ${file} missing: run UPDATE_GOLDEN=1 npx vitest run test/render.test.ts`);
  expect(actual).toBe(readFileSync(file, 'utf8'));
}

function expectNoPlanted(text: string) {
  for (const [what, value] of Object.entries(PLANTED)) expect(text.includes(value), `${what} leaked`).toBe(false);
}

describe('renderPlanMarkdown', () => {
  it('renders a realistic plan exactly (golden)', () => {
    golden('realistic.md', renderPlanMarkdown(realisticPlan(), { environment: 'production', target: 'eu-1', headSha: '3f2c9a1b7d5e4f60a1b2c3d4e5f60718293a4b5c' }));
  });

  it('never shows a secret value, not even a changed one', () => {
    const plan = realisticPlan();
    const md = renderPlanMarkdown(plan, { environment: 'production' });
    expectNoPlanted(md);
    expect(md).toContain(`- environment.DB_PASSWORD: ${MASK}\n+ environment.DB_PASSWORD: ${MASK} (changed)\n`);
    expect(md).toContain(`+ command: ["redis-server", "--requirepass", "${MASK}"]`);
  });

  it('shows the summary line and one table row per changed resource', () => {
    const md = renderPlanMarkdown(realisticPlan(), { environment: 'production' });
    expect(md).toContain('**1 to create, 4 to change, 1 to remove, 2 unchanged**');
    const rows = md.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| Resource') && !l.startsWith('| ---'));
    expect(rows).toEqual([
      '| service <code>cache</code> | create | missing |',
      '| service <code>api</code> | change | network changed |',
      '| service <code>db</code> | change | network changed |',
      '| service <code>web</code> | change | scale 1 → 2, image changed |',
      '| network <code>back</code> | change | network config changed |',
      '| service <code>worker</code> | remove | no longer declared |',
      '| volume <code>data</code> | unchanged | volume options differ; volumes are never recreated implicitly |'.replace(';', '&#59;'),
    ]);
  });

  it('renders an empty plan as "No changes"', () => {
    const d = realisticBefore();
    const host = simulate(reconcile(d, emptyObserved('shop', 'production')), emptyObserved('shop', 'production'));
    const plan = reconcile(d, host);
    expect(plan.nodes).toEqual([]);
    expect(renderPlanMarkdown(plan, { environment: 'production', target: 'eu-1' })).toBe(
      [
        '### berth plan for <code>production</code>',
        '',
        `target <code>eu-1</code> · fingerprint <code>${plan.fingerprint.slice(0, 16)}</code>`,
        '',
        '**No changes.** 0 to create, 0 to change, 0 to remove, 7 unchanged.',
        '',
      ].join('\n'),
    );
    expect(renderPlanText(plan)).toBe(`No changes. 0 to create, 0 to change, 0 to remove, 7 unchanged.\n\nFingerprint: ${plan.fingerprint}\n`);
  });

  it('collapses long plans and long diffs', () => {
    const many = state(Array.from({ length: 30 }, (_, i) => spec(`s${String(i).padStart(2, '0')}`)), [net('default')]);
    const md = renderPlanMarkdown(reconcile(many, emptyObserved('shop', 'staging')), { environment: 'staging' });
    expect(md).toMatch(/<details>\n<summary>Plan \(\d+ steps\)<\/summary>/);
    expect(md).toContain('<details>\n<summary>service <code>s00</code> (create): missing</summary>');
    const small = renderPlanMarkdown(reconcile(state([spec('web')]), emptyObserved('shop', 'staging')), { environment: 'staging' });
    expect(small).toContain('<details open>\n<summary>Plan (4 steps)</summary>');
  });

  it('warns about unset variables per file, names as escaped code, the file path inert', () => {
    const plan = reconcile(state([spec('web')]), emptyObserved('shop', 'staging'));
    const unsetVariables = [
      { file: 'compose.yml', names: ['DB_HOST', 'SMTP_USER'] },
      { file: 'deploy/<img src=x onerror=alert(1)>[x](http://evil)`.env', names: ['ONLY'] },
    ];
    const md = renderPlanMarkdown(plan, { environment: 'staging', unsetVariables });
    expect(md).toContain(
      "> ⚠️ <code>compose&#46;yml</code> uses 2 variables that are not set: <code>DB&#95;HOST</code>, <code>SMTP&#95;USER</code>; each became an empty string, as docker compose does&#59; if one was meant to have a value, set it in the environment&#39;s variables in &#46;github&#47;berth&#46;yml or in the &#46;env file",
    );
    expect(md).toContain('uses a variable that is not set: <code>ONLY</code>; it became an empty string, as docker compose does&#59; if it was meant');
    const outside = md.replace(/^```[a-z]*\n[\s\S]*?\n```$/gm, '');
    expect(outside).not.toMatch(/<(?!\/?(code|details|summary)\b)/);
    expect(outside).not.toContain('](');
    expect(outside).not.toContain('`');
    // a secret value is masked wherever it would show, the warning too
    expect(renderPlanMarkdown(plan, { environment: 'staging', unsetVariables: [{ file: 'hunter2/compose.yml', names: ['X'] }], secretValues: ['hunter2'] })).not.toContain('hunter2');
    // nothing unset, no warning
    expect(renderPlanMarkdown(plan, { environment: 'staging' })).not.toContain('⚠️');
    expect(unsetVariablesText(unsetVariables[0]!)).toBe(
      "compose.yml uses 2 variables that are not set: DB_HOST, SMTP_USER; each became an empty string, as docker compose does; if one was meant to have a value, set it in the environment's variables in .github/berth.yml or in the .env file",
    );
  });

  it('escapes hostile names so they cannot break the comment', () => {
    const names = ['<img src=x onerror=alert(1)>', 'a`b``c', 'x|y', '@octocat', '[link](http://evil)', '</details>', '```'];
    const d = state(names.map((n) => spec(n, { networks: ['default'] })));
    const md = renderPlanMarkdown(reconcile(d, emptyObserved('shop', 'staging')), { environment: '<b>env</b>', target: 't|1' });
    // Outside code blocks no raw angle bracket, backtick run, pipe in a cell or mention survives.
    const outside = md.replace(/^```[a-z]*\n[\s\S]*?\n```$/gm, '');
    expect(outside).not.toMatch(/<(?!\/?(code|details|summary)\b)/);
    expect(outside).not.toContain('@octocat');
    expect(outside).not.toContain('`');
    expect(outside).not.toContain('](');
    for (const row of outside.split('\n').filter((l) => l.startsWith('| service'))) expect(row.split('|').length).toBe(5);
    expect(outside.match(/<details/g)!.length).toBe(outside.match(/<\/details>/g)!.length);
    // Inside code blocks the names appear verbatim (a fence cannot be closed by them).
    expect(md).toContain('+ networks: default');
    expect(md).toContain('service:<img src=x onerror=alert(1)>:1, CreateContainer, missing');
    expect(escapeMarkdown('<img src=x>')).toBe('&#60;img src&#61;x&#62;');
  });

  it('writes control and bidi characters as escapes', () => {
    expect(sanitizeLine('a\nb\u202ec\u0007')).toBe('a\\nb\\u202ec\\u0007');
    const d = state([spec('web', { environment: { MOTD: 'line1\n```\n<script>' } })]);
    const md = renderPlanMarkdown(reconcile(d, emptyObserved('shop', 'staging')), { environment: 'staging' });
    expect(md).toContain('+ environment.MOTD: line1\\n```\\n<script>');
  });

  it('keeps every part of a 2,000-service plan under GitHub’s limit once split, without secrets', () => {
    const d = state(
      Array.from({ length: 2000 }, (_, i) => spec(`svc${i}`, { environment: { API_TOKEN: `${PLANTED.apiToken}-${i}`, PORT: String(8000 + i) } })),
      [net('default')],
    );
    const md = renderPlanMarkdown(reconcile(d, emptyObserved('shop', 'staging')), { environment: 'staging' });
    expect(md.length).toBeGreaterThan(GITHUB_COMMENT_LIMIT);
    const parts = splitMarkdown(md);
    expect(parts.length).toBeGreaterThan(1);
    for (const p of parts) {
      expect(p.length).toBeLessThan(GITHUB_COMMENT_LIMIT);
      expect(p).not.toContain(PLANTED.apiToken);
    }
  });
});

describe('plan text lines', () => {
  it('never contain environment values, secret or not', () => {
    const plan = realisticPlan();
    const text = planToString(plan);
    // (values short enough to be a service name, like DB_HOST=db, are skipped)
    for (const s of [...realisticBefore().services, ...realisticAfter().services]) {
      for (const v of Object.values(s.spec.environment)) if (v.length >= 5) expect(text).not.toContain(v);
    }
    expectNoPlanted(text);
  });
});

describe('diffSpecs', () => {
  const base: ServiceSpec = spec('api', {
    command: ['serve'],
    environment: { A: '1', B: '2', SECRET_KEY: 's1-value' },
    ports: [{ target: 80, published: 8080, protocol: 'tcp' }],
    volumes: [{ type: 'volume', source: 'data', target: '/data', readOnly: false }],
    networks: ['default'],
    healthcheck: { test: ['CMD', 'true'], intervalMs: 30_000, timeoutMs: 5000, retries: 3, startPeriodMs: 0 },
    labels: { team: 'core' },
  });

  it('lists only changed fields, in a fixed order, list items as remove + add', () => {
    const next: ServiceSpec = {
      ...base,
      image: 'docker.io/berth-test/app:2',
      command: ['serve', '--verbose'],
      environment: { A: '1', B: '3', C: 'new', SECRET_KEY: 's2-value' },
      ports: [
        { target: 80, published: 8080, protocol: 'tcp' },
        { target: 9, published: 9000, hostIp: '127.0.0.1', protocol: 'udp' },
      ],
      volumes: [{ type: 'volume', source: 'data', target: '/data', readOnly: true }, { type: 'tmpfs', target: '/run', readOnly: false }],
      networks: ['back', 'default'],
      dependsOn: [{ service: 'db', condition: 'service_healthy' }],
      healthcheck: { test: ['CMD', 'true'], intervalMs: 60_000, timeoutMs: 5000, retries: 5, startPeriodMs: 1500 },
      labels: {},
      restart: 'unless-stopped',
      user: '1000:1000',
      workingDir: '/app',
      replicas: 3,
      privileged: true,
      capAdd: ['NET_ADMIN'],
    };
    expect(diffSpecs(base, next)).toEqual([
      '- image: docker.io/berth-test/app:1',
      '+ image: docker.io/berth-test/app:2',
      '- command: ["serve"]',
      '+ command: ["serve", "--verbose"]',
      '- environment.B: 2',
      '+ environment.B: 3',
      '+ environment.C: new',
      `- environment.SECRET_KEY: ${MASK}`,
      `+ environment.SECRET_KEY: ${MASK} (changed)`,
      '+ ports: 127.0.0.1:9000:9/udp',
      '- volumes: data:/data',
      '+ volumes: data:/data:ro',
      '+ volumes: tmpfs:/run',
      '+ networks: back',
      '+ depends_on: db (service_healthy)',
      '- healthcheck.interval: 30s',
      '+ healthcheck.interval: 1m',
      '- healthcheck.retries: 3',
      '+ healthcheck.retries: 5',
      // 0 is a timing the files leave out (the image's or Docker's default): not shown
      '+ healthcheck.start_period: 1500ms',
      '- labels.team: core',
      '- restart: no',
      '+ restart: unless-stopped',
      '+ user: 1000:1000',
      '+ working_dir: /app',
      '- replicas: 1',
      '+ replicas: 3',
      '+ privileged: true',
      '+ cap_add: NET_ADMIN',
    ]);
  });

  it('is empty for equal specs and orders ports numerically', () => {
    expect(diffSpecs(base, structuredClone(base))).toEqual([]);
    const ports = (ps: number[]) => spec('x', { ports: ps.map((p) => ({ target: p, published: p, protocol: 'tcp' as const })) });
    expect(diffSpecs(ports([]), ports([10000, 80, 9]))).toEqual(['+ ports: 9:9/tcp', '+ ports: 80:80/tcp', '+ ports: 10000:10000/tcp']);
  });

  it('tolerates a before spec with missing fields (an old or foreign config label)', () => {
    const partial = { name: 'api', image: 'docker.io/berth-test/app:1' } as unknown as ServiceSpec;
    expect(diffSpecs(partial, spec('api'))).toEqual(['+ command: ["sleep", "3600"]', '+ networks: default', '+ restart: no', '+ replicas: 1']);
  });
});

describe('renderPlanText', () => {
  it('renders a realistic plan exactly (golden)', () => {
    const text = renderPlanText(realisticPlan());
    golden('realistic.txt', text);
    expectNoPlanted(text);
  });
});

describe('planToJson', () => {
  it('is stable, masked and golden', () => {
    const json = JSON.stringify(planToJson(realisticPlan()), null, 2) + '\n';
    golden('realistic.json', json);
    expectNoPlanted(json);
  });

  it('does not depend on the order Docker listed things in', () => {
    const host = realisticHost();
    const reversed: ObservedState = { ...host, containers: [...host.containers].reverse(), networks: [...host.networks].reverse() };
    const after = realisticAfter();
    const reordered: DesiredState = { ...after, services: [...after.services].reverse() };
    expect(JSON.stringify(planToJson(reconcile(reordered, reversed)))).toBe(JSON.stringify(planToJson(reconcile(after, host))));
  });

  it('masks configured secret keys too', () => {
    const d = state([spec('web', { environment: { DSN: 'planted-custom-dsn' } })]);
    const plan = reconcile(d, emptyObserved('shop', 'staging'));
    expect(JSON.stringify(planToJson(plan))).toContain('planted-custom-dsn');
    expect(JSON.stringify(planToJson(plan, { secretKeys: ['DSN'] }))).not.toContain('planted-custom-dsn');
    expect(renderPlanMarkdown(plan, { environment: 'staging', secretKeys: ['DSN'] })).not.toContain('planted-custom-dsn');
  });
});
