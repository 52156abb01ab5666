// Real compose files from public projects (fixtures/corpus, origins and
// licences in fixtures/corpus/SOURCES.md), each repository with the
// .github/berth.yml its user would write: the variables the files need and the
// policy they ask for. Every environment is loaded from the checkout exactly as
// the CLI does (env_file, .env, include and extends read through the same
// reader), planned on an empty host, rendered, applied in simulation and
// planned again: that second plan must be empty. A file that does not plan
// must fail with a located error; nothing may crash. Prints the figure.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/config.js';
import { isBerthError } from '../src/errors.js';
import { isEmpty, planToString } from '../src/plan/plan.js';
import { reconcile } from '../src/plan/reconcile.js';
import { renderPlanMarkdown } from '../src/plan/render.js';
import { loadEnvironment, readFromDir } from '../src/config/load-environment.js';
import { emptyObserved, simulate } from './helpers/simulate.js';

const CORPUS = resolve(import.meta.dirname, '../fixtures/corpus');

function repositories(dir: string): string[] {
  if (existsSync(join(dir, '.github/berth.yml'))) return [dir];
  return readdirSync(dir)
    .filter((n) => !n.startsWith('.') && statSync(join(dir, n)).isDirectory())
    .flatMap((n) => repositories(join(dir, n)));
}

interface Outcome {
  name: string;
  ok: boolean;
  code?: string;
  message?: string;
  /** variables a plain ${VAR} left unset (each "", as in docker compose), counted over the files */
  unset?: number;
}

describe('corpus of real compose files', () => {
  it('at least 90% plan, the rest fail with a located error, none crash', async () => {
    const outcomes: Outcome[] = [];
    for (const root of repositories(CORPUS)) {
      const config = parseConfig(readFileSync(join(root, '.github/berth.yml'), 'utf8'), '.github/berth.yml');
      for (const env of config.environments) {
        const name = `${relative(CORPUS, root)}: ${(env.compose ?? ['(found as compose finds it)']).join(' + ')}`;
        try {
          const { desired } = await loadEnvironment(readFromDir(root), env.name);
          const observed = emptyObserved(desired.project, desired.environment);
          const plan = reconcile(desired, observed);
          expect(planToString(plan), name).not.toBe('');
          const md = renderPlanMarkdown(plan, { environment: env.name, target: 'local', headSha: 'abc1234', ...(desired.unsetVariables ? { unsetVariables: desired.unsetVariables } : {}) });
          expect(md).toContain(env.name);
          if (desired.unsetVariables) expect(md, name).toContain('not set: <code>');
          // applied, the host converges: a second plan has nothing to do (no key reads as drift)
          expect(isEmpty(reconcile(desired, simulate(plan, observed, 'new'))), name).toBe(true);
          const unset = desired.unsetVariables?.reduce((n, u) => n + u.names.length, 0);
          outcomes.push({ name, ok: true, ...(unset ? { unset } : {}) });
        } catch (e) {
          if (!isBerthError(e)) throw new Error(`${name} crashed: ${String((e as Error)?.stack ?? e)}`);
          // located: the file it is about, and a line inside compose files
          expect(e.file, name).toBeTruthy();
          if (e.code !== 'missing_file') expect(e.line, `${name}: ${e.message}`).toBeGreaterThan(0);
          outcomes.push({ name, ok: false, code: e.code, message: e.message });
        }
      }
    }
    const planned = outcomes.filter((o) => o.ok).length;
    const pct = (n: number, d: number) => `${((100 * n) / d).toFixed(1)}%`;
    const lines = [
      `corpus: ${planned}/${outcomes.length} environments plan (${pct(planned, outcomes.length)})`,
      ...outcomes.filter((o) => !o.ok).map((o) => `  refused  ${o.name}\n           ${o.message}`),
      ...outcomes.filter((o) => o.unset).map((o) => `  warned   ${o.name}: ${o.unset} unset variable${o.unset === 1 ? '' : 's'} became ""`),
    ];
    console.log(lines.join('\n'));
    expect(outcomes.length).toBeGreaterThanOrEqual(199);
    // an unset plain ${VAR} is "" with a warning, as in docker compose: it refuses nothing here (the
    // berth.yml files supply what a ${VAR:?…} demands)
    expect(outcomes.filter((o) => o.code === 'missing_variable').map((o) => o.name)).toEqual([]);
    // ~ binds (Flowise's two files, Minecraft, InfluxDB) plan with the environment's home: in berth.yml
    const tilde = outcomes.filter((o) => ['flowise', 'awesome-compose/minecraft', 'docker-library-docs: influxdb'].some((p) => o.name.startsWith(p)));
    expect(tilde.map((o) => `${o.name}: ${o.ok ? 'planned' : o.message}`)).toEqual(tilde.map((o) => `${o.name}: planned`));
    expect(tilde.length).toBe(4);
    // cal.com's and healthchecks' files read an env_file .env their users copy from .env.example and do
    // not commit (docker compose refuses the missing file too): refused for that and nothing else
    for (const project of ['calcom-docker', 'healthchecks']) {
      const o = outcomes.filter((x) => x.name.startsWith(`${project}:`));
      expect(o.length, project).toBe(1);
      expect(o[0]!.code, project).toBe('missing_file');
      expect(o[0]!.message, project).toContain('env_file .env not found');
    }
    // the seventh batch's other projects all plan ($PWD binds of miniflux and ClickHouse with PWD set by the environment included)
    const batch7 = ['miniflux', 'spring-petclinic-microservices', 'keto', 'cadence', 'casdoor', 'graylog-docker-compose', 'clickhouse-examples', 'docker4drupal'];
    const b7 = outcomes.filter((o) => batch7.some((p) => o.name.startsWith(`${p}:`)));
    expect(b7.length).toBe(37);
    expect(b7.filter((o) => !o.ok).map((o) => `${o.name}: ${o.message}`)).toEqual([]);
    expect(planned / outcomes.length).toBeGreaterThanOrEqual(0.9);
  }, 120_000);
});
