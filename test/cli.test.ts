// `berth plan|apply|status` end to end on the real engine, through main() with
// captured output: exit codes 2 (changes) → apply → 0 (no changes), formats,
// and errors with exit 1.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import type { Io } from '../src/cli/main.js';
import { LABEL } from '../src/model/model.js';
import { docker, removeProject } from './helpers/docker.js';
import { describeDocker } from './helpers/env.js';

const PROJECT = `t-cli-${process.pid}`;

function capture(): Io & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out: (s: string) => void (io.stdout += `${s}\n`), err: (s: string) => void (io.stderr += `${s}\n`) };
  return io;
}

const cleanup = () => removeProject(PROJECT);

describeDocker('berth CLI', () => {
  let repo: string;
  let db: string;
  beforeAll(async () => {
    await cleanup();
    const dir = mkdtempSync(join(tmpdir(), 'berth-cli-'));
    repo = join(dir, 'shop');
    cpSync('fixtures/repos/shop', repo, { recursive: true });
    const cfg = join(repo, '.github/berth.yml');
    // Own project name (CI cleanup removes t-*) and ports nobody else uses.
    writeFileSync(cfg, readFileSync(cfg, 'utf8').replace('project: shop', `project: ${PROJECT}`).replace('"18080"', '"28080"').replace('"18081"', '"28081"'));
    db = `sqlite:${join(dir, 'berth.sqlite')}`;
  });
  afterAll(cleanup);
  // No case needs another's containers: each one's networks go as soon as it ends.
  afterEach(cleanup);

  it('plan exits 2 with changes, apply converges, plan then exits 0', async () => {
    const plan = capture();
    expect(await main(['plan', '--repo', repo, '--env', 'staging'], plan)).toBe(2);
    expect(plan.stdout).toContain('Plan: 6 to create, 0 to change, 0 to remove, 0 unchanged.');
    expect(plan.stdout).toContain('[1,3,4] -> #5 service:db:1, CreateContainer, missing');
    expect(plan.stdout).toContain('environment.DB_PASSWORD: ••••••');
    expect(plan.stdout).not.toContain('staging-secret');

    const apply = capture();
    expect(await main(['apply', '--repo', repo, '--env', 'staging', '--yes', '--database', db], apply)).toBe(0);
    expect(apply.stdout).toMatch(/operation local {2}completed {2}12\/12 tasks/);
    const id = /Apply (\S+) started/.exec(apply.stdout)![1]!;

    const again = capture();
    expect(await main(['plan', '--repo', repo, '--env', 'staging'], again)).toBe(0);
    expect(again.stdout).toContain('No changes.');

    const status = capture();
    expect(await main(['status', '--apply', id, '--database', db], status)).toBe(0);
    expect(status.stdout).toContain(`apply ${id}  local/${PROJECT}  staging  completed`);
    expect(status.stdout).toMatch(/7 +WaitHealthy +service:db:1 +succeeded/);
    const list = capture();
    expect(await main(['status', '--database', db], list)).toBe(0);
    expect(list.stdout).toContain(id);
  }, 60_000);

  it('--format json is stable, masked JSON', async () => {
    const io = capture();
    expect(await main(['plan', '--repo', repo, '--env', 'production', '--format', 'json'], io)).toBe(2);
    const json = JSON.parse(io.stdout) as { environment: string; targets: { target: string; nodes: unknown[] }[] };
    expect(json.environment).toBe('production');
    expect(json.targets[0]!.target).toBe('local');
    expect(json.targets[0]!.nodes.length).toBeGreaterThan(0);
    expect(io.stdout).not.toContain('production-secret');
  });

  it('apply without --yes and without a terminal refuses and changes nothing', async () => {
    const io = capture();
    expect(await main(['apply', '--repo', repo, '--env', 'production', '--database', db], io)).toBe(1);
    expect(io.stderr).toContain('refusing to apply without confirmation');
  });

  it('recover drives an apply a crash left open to its end', async () => {
    const none = capture();
    expect(await main(['recover', '--database', db], none)).toBe(0);
    expect(none.stdout).toContain('No applies to recover.');
    // An apply recorded but never driven (its process died before the first step).
    const { openStore } = await import('../src/store/open.js');
    const { prepareApply } = await import('../src/apply/prepare-apply.js');
    const { loadEnvironment, readFromDir } = await import('../src/config/load-environment.js');
    const { observe } = await import('../src/docker/observe.js');
    const store = await openStore(db);
    const loaded = await loadEnvironment(readFromDir(repo), 'production');
    const { applyId } = await prepareApply(store, async (_t, p, e) => (await observe(docker, p, e)).observed, {
      repo: `local/${PROJECT}`, pr: null, environment: 'production', kind: 'apply', actor: 'test', headSha: null, desired: loaded.desired, targets: ['local'], onFailure: 'halt',
    });
    await store.close();
    const io = capture();
    expect(await main(['recover', '--database', db], io)).toBe(0);
    expect(io.stdout).toContain(`apply ${applyId}: completed`);
    const again = capture();
    expect(await main(['plan', '--repo', repo, '--env', 'production'], again)).toBe(0);
  }, 60_000);

  it('plan warns about a variable the compose file leaves unset, text and markdown', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-cli-unset-'));
    try {
      const cfg = `project: ${PROJECT}\nenvironments:\n  - name: staging\n    compose: [compose.yml]\n    targets: [local]\n`;
      mkdirSync(join(dir, '.github'));
      writeFileSync(join(dir, '.github/berth.yml'), cfg);
      writeFileSync(join(dir, 'compose.yml'), 'services:\n  web:\n    image: berth-test/app:1\n    environment:\n      MODE: ${BERTH_CLI_UNSET_MODE}\n');
      const text = capture();
      expect(await main(['plan', '--repo', dir, '--env', 'staging'], text)).toBe(2);
      expect(text.stdout).toContain('warning: compose.yml uses a variable that is not set: BERTH_CLI_UNSET_MODE; it became an empty string, as docker compose does');
      const md = capture();
      expect(await main(['plan', '--repo', dir, '--env', 'staging', '--format', 'markdown'], md)).toBe(2);
      expect(md.stdout).toContain('> ⚠️ <code>compose&#46;yml</code> uses a variable that is not set: <code>BERTH&#95;CLI&#95;UNSET&#95;MODE</code>');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('errors exit 1 with the problem and where', async () => {
    const unknown = capture();
    expect(await main(['plan', '--repo', repo, '--env', 'prod'], unknown)).toBe(1);
    expect(unknown.stderr).toMatch(/prod/);
    expect(unknown.stderr).toMatch(/production/);
    const usage = capture();
    expect(await main(['plan', '--env', 'staging'], usage)).toBe(1);
    expect(usage.stderr).toContain('--repo is required');
    const bad = capture();
    expect(await main(['plan', '--repo', 'fixtures/repos/does-not-exist', '--env', 'staging'], bad)).toBe(1);
    expect(bad.stderr).toContain('.github/berth.yml');
  });
});
