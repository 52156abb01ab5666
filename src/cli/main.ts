// `berth plan|apply|status|recover`: the same loader, planner, store and
// executor the app uses, run locally against a Docker endpoint.
import { hostname } from 'node:os';
import { createInterface } from 'node:readline/promises';
import { parseArgs } from 'node:util';
import type { Observer, TargetPlan } from '../apply/prepare-apply.js';
import { ApplyRefusedError, expectedOf, planTargets, prepareApply } from '../apply/prepare-apply.js';
import { observe } from '../docker/observe.js';
import { pinThroughTargets, tagResolver } from '../docker/resolve.js';
import { systemLookup } from '../compose/registries.js';
import { driftReport, renderDriftText } from '../drift/drift.js';
import { isBerthError } from '../errors.js';
import { Executor } from '../apply/executor.js';
import { Lanes } from '../apply/lanes.js';
import { secretVariableValues } from '../plan/mask.js';
import { learnApply, learnDesired, learnEnvironment, outText } from '../text/outbound.js';
import { isEmpty } from '../plan/plan.js';
import { planToJson, renderPlanMarkdown, renderPlanText, unsetVariablesText } from '../plan/render.js';
import type { UnsetVariables } from '../model/model.js';
import { loadEnvironment, readFromDir } from '../config/load-environment.js';
import { CONFIG_PATH, findEnvironment, parseConfig } from '../config/config.js';
import type { LoadedEnvironment } from '../config/load-environment.js';
import { openStore } from '../store/open.js';
import type { ApplyRow, OperationRow, Store, TaskRow } from '../store/store.js';
import { TERMINAL_TASK_STATES } from '../store/store.js';
import { Targets } from '../docker/targets.js';
import { cmdSecrets, SECRETS_USAGE, SecretsUsageError } from '../secrets/command.js';
import { secretKeysOf } from '../secrets/environment.js';
import { Keyring } from '../secrets/keyring.js';
import { SecretVault, type SecretHashes } from '../secrets/vault.js';

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  /** asks a yes/no question; undefined when there is no terminal to ask on */
  confirm?: (question: string) => Promise<boolean>;
  /** all of stdin (a secret's value); undefined when stdin is a terminal */
  stdin?: () => Promise<string | undefined>;
}

const USAGE = `usage:
  berth plan    --repo DIR --env NAME [--docker URL] [--format text|markdown|json] [--database URL] [--repository OWNER/NAME]
                exit 0: no changes, 2: changes, 1: error
  berth apply   --repo DIR --env NAME [--docker URL] [--yes] [--database URL] [--repository OWNER/NAME]
                takes the environment's lock (as cli:<user>@<host>) for the apply, like /apply does
  berth status  [--apply ID] [--database URL]
  berth status  --targets [--docker URL]           each target's transport and engine version
                exit 0: all answer, 1: one does not
  berth status  --drift [--database URL] [--docker URL]
                drift from each environment's last completed apply, moved image tags included
                exit 0: no drift, 2: drift, 1: error
  berth recover [--docker URL] [--database URL]   resume or fail applies a crash left open
${SECRETS_USAGE}

  --docker URL     serve every target of the environment from this endpoint
                   (default: BERTH_TARGETS, else DOCKER_HOST, else the local socket)
  --database URL   default: DATABASE_URL, else sqlite:./.berth/berth.sqlite
  --repository     the GitHub repository whose environment locks and secrets to share with the app
                   (default: local/<project>)`;

class UsageError extends Error {}

function realIo(): Io {
  return {
    out: (s) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`),
    stdin: async () => {
      if (process.stdin.isTTY) return undefined;
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    },
    err: (s) => process.stderr.write(s.endsWith('\n') ? s : `${s}\n`),
    ...(process.stdin.isTTY
      ? {
          confirm: async (q: string) => {
            const rl = createInterface({ input: process.stdin, output: process.stdout });
            try {
              return (await rl.question(`${q} Only 'yes' will be accepted: `)).trim() === 'yes';
            } finally {
              rl.close();
            }
          },
        }
      : {}),
  };
}

function targetsFor(docker: string | undefined, names: readonly string[]): Targets {
  return docker ? Targets.single(docker, names) : Targets.fromEnv();
}

function observerFor(targets: Targets): Observer {
  return async (target, project, environment, opts) => (await observe(targets.docker(target), project, environment, opts)).observed;
}

/**
 * The secret store's hashes for planning, opened only when an environment
 * lists secrets; undefined without a secret key (such an environment is then
 * refused at its `secrets:` line).
 */
function cliSecretHashes(database: string | undefined): SecretHashes | undefined {
  const keyring = Keyring.fromEnv();
  if (!keyring) return undefined;
  return {
    hashes: async (repo, environment, names) => {
      const store = await openStore(database);
      try {
        return await new SecretVault(store, keyring).hashes(repo, environment, names);
      } finally {
        await store.close();
      }
    },
  };
}

async function loadAndPlan(v: Record<string, string | boolean | undefined>) {
  const repo = required(v, 'repo');
  const env = required(v, 'env');
  const repository = v.repository as string | undefined;
  if (repository !== undefined && !/^[\w.-]+\/[\w.-]+$/.test(repository)) throw new UsageError(`--repository must be OWNER/NAME, not "${repository}"`);
  const source = cliSecretHashes(v.database as string | undefined);
  const read = readFromDir(repo);
  // The environment's secret values are known before any file is read: a failed read may quote a path built
  // from one (ENAMETOOLONG, ELOOP), and every line the CLI prints is masked with what is known then.
  const configText = await read(CONFIG_PATH);
  if (configText !== undefined) {
    try {
      learnEnvironment(findEnvironment(parseConfig(configText, CONFIG_PATH), env));
    } catch {
      // an invalid config is reported by the load below, at its line
    }
  }
  const loaded = await loadEnvironment(read, env, configText, { ...(repository ? { repo: repository } : {}), ...(source ? { source } : {}) });
  const e = loaded.environment;
  learnEnvironment(e);
  learnDesired(loaded.desired, secretKeysOf(e), secretVariableValues(e.variables, e.secret_keys));
  const targets = targetsFor(v.docker as string | undefined, loaded.environment.targets);
  // A project on a target belongs to one repository, the CLI's too (--repository, else local/<project>): what it
  // creates carries that repository's label, so another repository that names the same project in its berth.yml
  // neither sees nor removes it, nor adopts its volumes (observe leaves out objects labelled for another repository).
  const owned = { ...loaded.desired, repository: cliRepository(repository, loaded.config.project) };
  // Pinned like the app pins (the first target's engine and registry login): the plan shows, and the apply runs, digests.
  const desired = await pinThroughTargets(targets, owned, loaded.environment.targets, process.env, { policy: loaded.config.policy, lookup: systemLookup });
  const plans = await planTargets(desired, loaded.environment.targets, observerFor(targets));
  return { loaded: { ...loaded, desired }, targets, plans };
}

/** The repository the CLI deploys as: the one named with --repository, else `local/<project>`. */
const cliRepository = (repository: string | undefined, project: string) => repository ?? `local/${project}`;

function required(v: Record<string, unknown>, name: string): string {
  const x = v[name];
  if (typeof x !== 'string' || !x) throw new UsageError(`--${name} is required`);
  return x;
}

/** The environment's secrets as the renderers take them. */
const secretsOf = (e: LoadedEnvironment['environment']) => ({ secretKeys: secretKeysOf(e), secretValues: secretVariableValues(e.variables, e.secret_keys) });

function printPlans(io: Io, plans: TargetPlan[], format: string, env: LoadedEnvironment['environment'], notes: readonly string[] = [], unsetVariables: readonly UnsetVariables[] = []) {
  const environment = env.name;
  const secrets = secretsOf(env);
  if (format === 'json') {
    io.out(JSON.stringify({ environment, targets: plans.map((p) => ({ target: p.target, ...(planToJson(p.plan, secrets) as object) })) }, null, 2));
    return;
  }
  for (const p of plans) {
    if (plans.length > 1) io.out(format === 'markdown' ? `## target \`${p.target}\`` : `== target ${p.target} ==`);
    io.out(format === 'markdown' ? renderPlanMarkdown(p.plan, { environment, target: p.target, notes, unsetVariables, ...secrets }) : [...notes.map((n) => `note: ${n}`), ...unsetVariables.map((u) => `warning: ${unsetVariablesText(u)}`), renderPlanText(p.plan, secrets)].join('\n'));
  }
}

async function cmdPlan(args: string[], io: Io): Promise<number> {
  const { values } = parseArgs({ args, options: { repo: { type: 'string' }, env: { type: 'string' }, docker: { type: 'string' }, format: { type: 'string', default: 'text' }, database: { type: 'string' }, repository: { type: 'string' } } });
  const format = values.format!;
  if (!['text', 'markdown', 'json'].includes(format)) throw new UsageError(`--format must be text, markdown or json, not "${format}"`);
  const { loaded, plans } = await loadAndPlan(values);
  printPlans(io, plans, format, loaded.environment, loaded.desired.notes, loaded.desired.unsetVariables);
  return plans.every((p) => isEmpty(p.plan)) ? 0 : 2;
}

function executorFor(store: Store, targets: Targets, io: Io): Executor {
  const keyring = Keyring.fromEnv();
  return new Executor({
    store,
    ...(keyring ? { secrets: new SecretVault(store, keyring) } : {}),
    engine: (t) => targets.engine(t),
    lanes: new Lanes(),
    registryLookup: systemLookup,
    log: {
      info: () => {},
      warn: (o) => io.err(`warning: ${JSON.stringify(o)}`),
      error: (o) => io.err(`error: ${JSON.stringify(o)}`),
    },
  });
}

async function cmdApply(args: string[], io: Io): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { repo: { type: 'string' }, env: { type: 'string' }, docker: { type: 'string' }, yes: { type: 'boolean', default: false }, database: { type: 'string' }, repository: { type: 'string' } },
  });
  const repository = values.repository;
  const { loaded, targets, plans } = await loadAndPlan(values);
  printPlans(io, plans, 'text', loaded.environment);
  if (plans.every((p) => isEmpty(p.plan))) {
    io.out('Nothing to apply.');
    return 0;
  }
  if (!values.yes) {
    if (!io.confirm) throw new UsageError('refusing to apply without confirmation: no terminal to ask on; pass --yes');
    if (!(await io.confirm(`Apply these changes to ${loaded.environment.name}?`))) {
      io.out('Apply cancelled.');
      return 1;
    }
  }
  const store = await openStore(values.database);
  const repo = cliRepository(repository, loaded.config.project);
  const user = process.env.USER ?? process.env.LOGNAME ?? 'cli';
  const owner = `cli:${user}@${hostname()}`;
  try {
    // Claimed first, as /apply claims it: a project another repository deployed on a target is not the CLI's to change.
    for (const target of loaded.environment.targets) {
      const holder = await store.claimProject(target, loaded.config.project, repo);
      if (holder !== repo) {
        io.err(`berth: project ${loaded.config.project} on target ${target} belongs to repository ${holder} (${CONFIG_PATH}: project) — apply it as that repository with --repository ${holder}, or choose another project name`);
        return 1;
      }
    }
    const executor = executorFor(store, targets, io);
    // The guard compares against exactly what was printed above. The lock, the in-flight check and the
    // apply are one transaction, as for /apply: a PR holding the environment, or an apply in flight, refuses it.
    let prepared;
    try {
      prepared = await prepareApply(store, observerFor(targets), {
        repo,
        pr: null,
        environment: loaded.environment.name,
        kind: 'apply',
        actor: user,
        headSha: null,
        desired: loaded.desired,
        targets: loaded.environment.targets,
        onFailure: loaded.environment.on_failure,
        policy: loaded.config.policy,
        ...(loaded.environment.parallelism ? { parallelism: loaded.environment.parallelism } : {}),
        expected: expectedOf(plans),
        ...secretsOf(loaded.environment),
        start: { lock: { owner, pr: 0 }, lease: { holder: executor.holder, ttlMs: executor.leaseTtlMs } },
      });
    } catch (err) {
      if (!(err instanceof ApplyRefusedError)) throw err;
      const r = err.refusal;
      io.err(r.reason === 'locked' ? `berth: ${loaded.environment.name} is locked by ${r.holder.owner} (since ${new Date(r.holder.createdAt).toISOString()})` : `berth: an apply to ${loaded.environment.name} is already in flight (${r.applyId})`);
      return 1;
    }
    const { applyId } = prepared;
    io.out(`Apply ${applyId} started (lock held by ${owner}).`);
    let state;
    try {
      state = await executor.run(applyId, prepared.handover);
    } finally {
      // Released once the apply ended; a lock whose apply is still in flight stays (recovery releases it).
      const lock = await store.getLock(repo, loaded.environment.name);
      if (lock?.owner === owner) await store.releaseLock(repo, loaded.environment.name, owner);
      // Reported here, on the terminal: no server's recovery owes it a report (false while it is still in flight).
      await store.markReported(applyId);
    }
    io.out(await statusText(store, applyId));
    return state === 'completed' ? 0 : 1;
  } finally {
    await store.close();
  }
}

const fmtMs = (ms: number | null) => (ms === null ? '' : ms < 1000 ? `${ms}ms` : `${(ms / 1000).toFixed(1)}s`);
const dur = (r: { startedAt: number | null; finishedAt: number | null }) => (r.startedAt === null ? '' : fmtMs((r.finishedAt ?? Date.now()) - r.startedAt));

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

export async function statusText(store: Store, applyId: string): Promise<string> {
  const apply = await store.getApply(applyId);
  if (!apply) throw new UsageError(`no apply ${applyId} in this database`);
  learnApply(apply);
  const ops = await store.listOperations(applyId);
  const tasks = await store.listTasksForApply(applyId);
  return renderStatus(apply, ops, tasks);
}

export function renderStatus(apply: ApplyRow, ops: OperationRow[], tasks: TaskRow[]): string {
  const lines = [
    `apply ${apply.id}  ${apply.repo}${apply.pr !== null ? `#${apply.pr}` : ''}  ${apply.environment}  ${apply.state}${apply.stopRequested ? ' (stop requested)' : ''}  ${dur(apply)}`,
  ];
  for (const op of ops) {
    const mine = tasks.filter((t) => t.operationId === op.id);
    const done = mine.filter((t) => TERMINAL_TASK_STATES.includes(t.state)).length;
    lines.push('', `operation ${op.target}  ${op.state}  ${done}/${mine.length} tasks  ${dur(op)}`);
    if (mine.length) {
      const rows = [['#', 'TASK', 'RESOURCE', 'STATE', 'TIME', 'ERROR'], ...mine.map((t) => [String(t.nodeId), t.kind, t.resource, t.state, dur(t), (t.error ?? '').split('\n')[0]!.slice(0, 120)])];
      lines.push(table(rows));
    }
  }
  return lines.join('\n');
}

async function cmdStatus(args: string[], io: Io): Promise<number> {
  const { values } = parseArgs({ args, options: { apply: { type: 'string' }, database: { type: 'string' }, limit: { type: 'string', default: '20' }, drift: { type: 'boolean', default: false }, targets: { type: 'boolean', default: false }, docker: { type: 'string' } } });
  if (values.targets) {
    const described = await targetsFor(values.docker, ['local']).describeAll();
    const rows = Object.entries(described).map(([t, d]) => [t, d.transport, d.address, d.version ?? '', d.api ?? '', (d.error ?? '').split('\n')[0]!]);
    io.out(table([['TARGET', 'TRANSPORT', 'ENDPOINT', 'ENGINE', 'API', 'ERROR'], ...rows]));
    return rows.some((r) => r[5]) ? 1 : 0;
  }
  const store = await openStore(values.database);
  try {
    if (values.drift) {
      // The report shows stored desired states: what they keep secret is masked.
      for (const a of await store.listApplies({ states: ['completed'] })) learnApply(a);
      // A tag that moved since the apply is drift too: asked through each target's engine and login.
      const targets = values.docker ? Targets.single(values.docker, await completedTargets(store)) : Targets.fromEnv();
      const report = await driftReport(store, process.env.BERTH_PIN_IMAGES === 'off' ? {} : { resolveTags: tagResolver(targets) });
      io.out(renderDriftText(report));
      return report.count ? 2 : 0;
    }
    if (values.apply) {
      io.out(await statusText(store, values.apply));
      return 0;
    }
    const applies = await store.listApplies({ limit: Number(values.limit) || 20 });
    for (const a of applies) learnApply(a);
    if (!applies.length) {
      io.out('No applies recorded.');
      return 0;
    }
    io.out(
      table([
        ['APPLY', 'REPO', 'PR', 'ENV', 'KIND', 'STATE', 'STARTED', 'TIME'],
        ...applies.map((a) => [a.id, a.repo, a.pr === null ? '' : String(a.pr), a.environment, a.kind, a.state, new Date(a.createdAt).toISOString(), dur(a)]),
      ]),
    );
    return 0;
  } finally {
    await store.close();
  }
}

/** The targets completed applies ran on (what --docker serves in `status --drift`). */
async function completedTargets(store: Store): Promise<string[]> {
  const applies = await store.listApplies({ states: ['completed'] });
  return [...new Set((await Promise.all(applies.map((a) => store.listOperations(a.id)))).flat().map((o) => o.target))];
}

async function cmdRecover(args: string[], io: Io): Promise<number> {
  const { values } = parseArgs({ args, options: { docker: { type: 'string' }, database: { type: 'string' } } });
  const store = await openStore(values.database);
  try {
    const open = await store.listApplies({ states: ['pending', 'running', 'running_degraded', 'stopping'] });
    const names = [...new Set((await Promise.all(open.map((a) => store.listOperations(a.id)))).flat().map((o) => o.target))];
    const targets = targetsFor(values.docker, names);
    const results = await executorFor(store, targets, io).recover();
    // A `berth apply` that died left its lock: it goes with the apply it was taken for.
    for (const r of results) {
      const a = await store.getApply(r.applyId);
      const lock = a && a.pr === null ? await store.getLock(a.repo, a.environment) : undefined;
      if (a && lock?.applyId === a.id && lock.owner.startsWith('cli:')) await store.releaseLock(a.repo, a.environment, lock.owner);
      // A CLI apply is reported here; a PR's apply is left to the server, which reports it to GitHub.
      if (a && a.pr === null) await store.markReported(a.id);
    }
    if (!results.length) io.out('No applies to recover.');
    for (const r of results) io.out(`apply ${r.applyId}: ${r.state}`);
    return results.every((r) => r.state === 'completed') ? 0 : 1;
  } finally {
    await store.close();
  }
}

/**
 * Everything the CLI prints passes through the masker (outbound.ts). Should masking itself fail, the line is
 * withheld: an error escaping main() would be printed by Node as it is, secrets and all.
 */
function maskedIo(io: Io): Io {
  const masked = (s: string) => {
    try {
      return outText(s);
    } catch {
      return 'berth: a line of output was withheld: masking the secrets in it failed';
    }
  };
  return { ...io, out: (s) => io.out(masked(s)), err: (s) => io.err(masked(s)) };
}

export async function main(argv: string[], rawIo: Io = realIo()): Promise<number> {
  const io = maskedIo(rawIo);
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'plan':
        return await cmdPlan(rest, io);
      case 'apply':
        return await cmdApply(rest, io);
      case 'status':
        return await cmdStatus(rest, io);
      case 'recover':
        return await cmdRecover(rest, io);
      case 'secrets':
        return await cmdSecrets(rest, { out: io.out, stdin: rawIo.stdin ?? (async () => undefined) });
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        io.out(USAGE);
        return cmd === undefined ? 1 : 0;
      default:
        throw new UsageError(`unknown command "${cmd}"`);
    }
  } catch (err) {
    if (err instanceof UsageError || err instanceof SecretsUsageError || (err as { code?: string })?.code?.startsWith?.('ERR_PARSE_ARGS')) {
      io.err(`berth: ${(err as Error).message}\n\n${USAGE}`);
    } else if (isBerthError(err)) {
      // Another repository's object on the target: the CLI deploys as a repository too (--repository, else local/<project>).
      const other = err.code === 'name_taken' ? / of repository (\S+) on this target/.exec(err.message)?.[1] : undefined;
      io.err(`berth: ${err.message}${other ? `\n(the CLI plans and applies as the repository --repository names, local/<project> without it: to work on ${other}'s deployment, pass --repository ${other})` : ''}`);
    } else {
      io.err(`berth: ${(err as Error)?.message ?? String(err)}`);
    }
    return 1;
  }
}
