// Round 17: a project on a target belongs to one repository — including a
// project the CLI deployed. `berth apply` left its containers, networks and
// volumes without the io.berth.repository label and recorded no owner, so the
// first repository whose default branch said `project: <the same name>` got
// them: observe shows objects without a repository label to everyone, the
// plan removed the CLI's services as orphans, and its named volume (the data)
// was adopted and mounted into the other repository's containers. The CLI
// now labels what it creates with its repository (--repository, else
// local/<project>) and claims the project in its store, as /apply does.
// CLI and app on one real engine, sharing one database.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { main, type Io } from '../../src/cli/main.js';
import { parseConfig } from '../../src/config/config.js';
import { observe } from '../../src/docker/observe.js';
import { Bot, type BotOptions } from '../../src/github/bot.js';
import type { GitHubPort } from '../../src/github/github.js';
import { LABEL } from '../../src/model/model.js';
import { docker, removeProject } from '../helpers/docker.js';
import { describeDocker } from '../helpers/env.js';
import { sqliteTestStore, type TestStore } from '../helpers/stores.js';

const PROJECT = 't-sec-69';
const CONFIG = `project: ${PROJECT}\nenvironments:\n  - name: staging\n    compose: [compose.yml]\n`;
const CLI_COMPOSE = 'services:\n  db:\n    image: berth-test/app:1\n    volumes: [data:/data]\nvolumes:\n  data: {}\n';
// Another repository's PR: a service of its own on the CLI's data volume.
const OTHER_COMPOSE = 'services:\n  spy:\n    image: berth-test/app:1\n    volumes: [data:/loot]\nvolumes:\n  data: {}\n';

function io() {
  const lines: string[] = [];
  const x: Io = { out: (s) => void lines.push(s), err: (s) => void lines.push(s) };
  return { io: x, text: () => lines.join('\n') };
}

describeDocker('security 69: a project the CLI deployed is no other repository\'s to take', () => {
  let ts: TestStore;
  let dir: string;
  beforeAll(async () => {
    await removeProject(PROJECT);
    ts = await sqliteTestStore();
    dir = mkdtempSync(join(tmpdir(), 'berth-rt17-69-'));
    mkdirSync(join(dir, '.github'));
    writeFileSync(join(dir, '.github/berth.yml'), CONFIG);
    writeFileSync(join(dir, 'compose.yml'), CLI_COMPOSE);
  });
  afterAll(async () => {
    await removeProject(PROJECT);
    await ts?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the CLI labels and claims what it deploys; another repository plans none of it', async () => {
    const r = io();
    expect(await main(['apply', '--repo', dir, '--env', 'staging', '--docker', 'unix:///var/run/docker.sock', '--yes', '--database', ts.url], r.io), r.text()).toBe(0);

    // evil/other's default branch names the same project; its PR is planned by the app on the same host and database.
    const files: Record<string, string> = { '.github/berth.yml': CONFIG, 'compose.yml': OTHER_COMPOSE };
    const gh = { readFile: async (_r: unknown, path: string) => files[path] } as unknown as GitHubPort;
    const bot = new Bot({
      store: ts.store,
      targets: { has: () => true, names: () => ['local'] },
      observe: async (_t: string, project: string, environment: string, opts?: object) => (await observe(docker, project, environment, opts)).observed,
      log: { error: () => {}, info: () => {}, warn: () => {} },
    } as unknown as BotOptions);
    const config = parseConfig(CONFIG, '.github/berth.yml');
    const planned = await bot.planEnvironment(gh, { owner: 'evil', name: 'other' }, { config, files: new Set(Object.keys(files)) }, config.environments[0]!, 'e'.repeat(40));
    // Before: planned, with the CLI's db removed as an orphan and its data volume adopted for spy.
    expect(planned.ok ? planned.plans.flatMap((p) => p.plan.nodes.map((n) => `${n.kind} ${n.resource}`)) : []).toEqual([]);
    expect(planned.ok).toBe(false);
    expect(planned.markdown).toContain(`belongs to repository local/${PROJECT}`);
    // …and what it would see of the host, were it to get that far: none of the CLI's objects.
    const seen = (await observe(docker, PROJECT, 'staging', { repository: 'evil/other' })).observed;
    expect(seen.containers).toEqual([]);
    expect(seen.volumes).toEqual([]);
    const [db] = await docker.listContainers({ all: true, filters: { label: [`${LABEL.project}=${PROJECT}`] } });
    expect(db?.Labels[LABEL.repository]).toBe(`local/${PROJECT}`);
    expect(await ts.store.projectOwner('local', PROJECT)).toBe(`local/${PROJECT}`);

    // The CLI planning as another repository meets the same refusal, and is told how to plan as the owner.
    const other = io();
    expect(await main(['plan', '--repo', dir, '--env', 'staging', '--docker', 'unix:///var/run/docker.sock', '--database', ts.url, '--repository', 'evil/other'], other.io)).toBe(1);
    expect(other.text()).toContain(`of repository local/${PROJECT} on this target`);
    expect(other.text()).toContain(`pass --repository local/${PROJECT}`);
    const owner = io();
    expect(await main(['plan', '--repo', dir, '--env', 'staging', '--docker', 'unix:///var/run/docker.sock', '--database', ts.url], owner.io), owner.text()).toBe(0);
  }, 120_000);
});
