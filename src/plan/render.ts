// A Plan as people read it: the Markdown of one environment's section of a PR
// comment, plain text for the CLI, and stable JSON for `--format json`.
//
// Everything user-controlled (service, network, environment and target names,
// values) is either inside a fenced block whose fence it cannot close, or
// entity-escaped, so a service named `<img src=x>` renders as text. Secret
// values never appear: see mask.ts.
import { escapeMarkdown, sanitizeLine } from '../text/escape.js';
import { MASK, Masker, secretContents } from './mask.js';
import { isTaintedField, type SecretFields } from '../compose/taint.js';
import type { Healthcheck, Logging, Mount, PortBinding, ServiceNetwork, ServiceSpec, Ulimit, UnsetVariables } from '../model/model.js';
import { EXTRA_KEYS } from '../compose/service-keys.js';
import type { NodeKind, NodeTarget, Plan, PlanSummary, ResourceChange } from './plan.js';
import { DRAIN_MS, isEmpty, nodeLine, summarize } from './plan.js';

export interface RenderOptions {
  environment: string;
  /** the named Docker endpoint the plan was made against */
  target?: string;
  /** the PR head the desired state was read at */
  headSha?: string;
  /** keys whose values are secret in addition to the PASSWORD/SECRET/TOKEN/KEY/… patterns */
  secretKeys?: readonly string[];
  /** values to redact wherever they appear (secret config variables) */
  secretValues?: readonly string[];
  /** what the compose files say that berth does not do (DesiredState.notes) */
  notes?: readonly string[];
  /** variables a plain ${VAR} used without a value, by file (DesiredState.unsetVariables) */
  unsetVariables?: readonly UnsetVariables[];
}

const unsetAdvice = (n: number) =>
  `${n === 1 ? 'it' : 'each'} became an empty string, as docker compose does; if ${n === 1 ? 'it was' : 'one was'} meant to have a value, set it in the environment's variables in .github/berth.yml or in the .env file`;

/** The unset-variable warning as plain text (the CLI's form; Markdown quotes names as code). */
export function unsetVariablesText(u: UnsetVariables): string {
  return `${u.file} uses ${u.names.length === 1 ? 'a variable' : `${u.names.length} variables`} that ${u.names.length === 1 ? 'is' : 'are'} not set: ${u.names.join(', ')}; ${unsetAdvice(u.names.length)}`;
}

/** At most this many diff lines in total and the per-service diffs render expanded. */
const OPEN_DIFF_LINES = 50;
/** At most this many plan steps and the plan renders expanded. */
const OPEN_PLAN_STEPS = 25;

// ---------------------------------------------------------------- summary

export function summaryLine(s: PlanSummary): string {
  return `${s.create} to create, ${s.change} to change, ${s.remove} to remove, ${s.unchanged} unchanged`;
}

const steps = (n: number) => `${n} step${n === 1 ? '' : 's'}`;

// ---------------------------------------------------------------- field diffs

interface Field {
  group: number;
  /** orders fields within a group; for list items the item itself, so a changed item reads as remove + add */
  sub: string;
  label: string;
  /** compared to decide "changed" (never shown) */
  raw: string;
  /** shown (masked) */
  shown: string;
}

const GROUPS = [
  'image',
  'command',
  'entrypoint',
  'environment',
  'ports',
  'volumes',
  'copied',
  'networks',
  'depends_on',
  'healthcheck',
  'labels',
  'restart',
  'user',
  'working_dir',
  'replicas',
  'privileged',
  'network_mode',
  'pid',
  'cap_add',
  'devices',
  'volumes_from',
  'device_requests',
] as const;
const G = Object.fromEntries(GROUPS.map((g, i) => [g, i])) as Record<(typeof GROUPS)[number], number>;

export function formatPort(p: PortBinding): string {
  const ip = p.hostIp ? (p.hostIp.includes(':') ? `[${p.hostIp}]` : p.hostIp) : '';
  const host = p.published !== undefined ? `${ip ? `${ip}:` : ''}${p.published}:` : ip ? `${ip}::` : '';
  return `${host}${p.target}/${p.protocol}`;
}

export function formatMount(m: Mount): string {
  // The modes a change of which recreates the container, as the short syntax writes them (subpath has none: key=value).
  const modes = [...(m.readOnly ? ['ro'] : []), ...(m.selinux ? [m.selinux] : []), ...(m.propagation ? [m.propagation] : []), ...(m.noCopy ? ['nocopy'] : []), ...(m.subpath ? [`subpath=${m.subpath}`] : [])];
  const opts = modes.length ? `:${modes.join(',')}` : '';
  if (m.type === 'tmpfs') return `tmpfs:${m.target}${opts}`;
  return m.source ? `${m.source}:${m.target}${opts}` : `${m.target}${opts}`;
}

/** A service's network with its settings there, as compose keys (a change of one is a visible line, not only "config changed"). */
export function formatServiceNetwork(name: string, o: ServiceNetwork | undefined): string {
  if (!o) return name;
  const parts = [
    ...(o.aliases?.length ? [`aliases: ${o.aliases.join(', ')}`] : []),
    ...(o.ipv4Address ? [`ipv4_address: ${o.ipv4Address}`] : []),
    ...(o.ipv6Address ? [`ipv6_address: ${o.ipv6Address}`] : []),
    ...(o.linkLocalIps?.length ? [`link_local_ips: ${o.linkLocalIps.join(', ')}`] : []),
    ...(o.macAddress ? [`mac_address: ${o.macAddress}`] : []),
    ...(o.driverOpts ? [`driver_opts: ${Object.entries(o.driverOpts).map(([k, v]) => `${k}=${v}`).join(', ')}`] : []),
    ...(o.priority ? [`priority: ${o.priority}`] : []),
  ];
  return parts.length ? `${name} (${parts.join('; ')})` : name;
}

/** A compose duration (`1m`, `30s`, `500ms`): how the file would spell it. */
export function formatComposeDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

const argv = (args: readonly string[]) => `[${args.map((a) => JSON.stringify(a)).join(', ')}]`;

/**
 * A spec's fields as diff lines show them (masked), keyed by group and item.
 * Collecting also teaches the masker every value it masked. A class, not
 * closures: this runs for every service of a plan (maskerForSpecs).
 */
class Fields {
  readonly out = new Map<string, Field>();
  /** whether any field of this service is secret-derived (most have none: no per-field lookups then) */
  private readonly anyTainted: boolean;

  constructor(
    private readonly spec: ServiceSpec | undefined,
    private readonly m: Masker,
    /** false: only teach the masker (maskerForSpecs), keep no fields — building them was most of its cost */
    private readonly keep = true,
  ) {
    this.anyTainted = spec !== undefined && m.hasTaintedIn(spec);
  }

  // A field a secret variable fed is shown as a mask as a whole, whatever parsing made of the value (compose/taint.ts);
  // its raw text is also remembered, so free text that quotes it (a plan step, a Docker message) is redacted.
  tainted(label: string): boolean {
    return this.anyTainted && this.m.taintedIn(this.spec!, label);
  }

  add(group: number, sub: string, label: string, raw: string, shown = raw): void {
    if (this.tainted(label)) {
      this.m.taintDerived(raw);
      shown = MASK;
      // `- "${S}=x"`: the key came from the secret too.
      if (/^(environment|labels)\./.test(label) && this.m.taintedIn(this.spec!, label.split('.')[0]!)) label = `${label.split('.')[0]}.${MASK}`;
    }
    if (this.keep) this.out.set(`${group}\u0000${sub}`, { group, sub, label, raw, shown });
  }

  item(group: number, label: string, value: string): void {
    this.add(group, value, label, value);
  }

  argsOf(label: string, args: readonly string[]): string {
    if (this.tainted(label)) for (const a of args) this.m.taintDerived(a);
    return argv(this.m.args(args));
  }
}

function specFields(spec: ServiceSpec | undefined, replicas: number | undefined, m: Masker, keep = true): Map<string, Field> {
  const f = new Fields(spec, m, keep);
  if (spec) {
    // Labels read back from containers are parsed tolerantly: any field may be missing.
    f.add(G.image, '', 'image', spec.image ?? '');
    if (spec.command) f.add(G.command, '', 'command', JSON.stringify(spec.command), f.argsOf('command', spec.command));
    if (spec.entrypoint) f.add(G.entrypoint, '', 'entrypoint', JSON.stringify(spec.entrypoint), f.argsOf('entrypoint', spec.entrypoint));
    for (const [k, v] of Object.entries(spec.environment ?? {})) {
      // Keys are secret only when they came from a secret themselves (`- "${S}=x"`).
      if (f.tainted('environment')) m.taintDerived(k);
      f.add(G.environment, k, `environment.${k}`, v, m.value(k, v));
    }
    // a bare name no variable sets: unset in the container (the image's value of it too), a line of its own
    for (const k of spec.unsetEnvironment ?? []) f.add(G.environment, k, `environment.${k}`, '\u0000unset', '(unset)');
    for (const p of spec.ports ?? []) f.item(G.ports, 'ports', formatPort(p));
    for (const v of spec.volumes ?? []) {
      if (f.tainted('volumes')) for (const part of [v.source, v.target, v.subpath]) if (part) m.taintDerived(part);
      f.item(G.volumes, 'volumes', formatMount(v));
    }
    // Repository files the app copies in place of binds (compose/repository-files.ts); a new content reads in the step's reason.
    for (const c of spec.files ?? []) if (c.kind === 'file') f.item(G.copied, 'copied', `${c.source} → ${c.target} (${c.mode.toString(8).padStart(4, '0')})`);
    for (const n of spec.networks ?? []) f.item(G.networks, 'networks', formatServiceNetwork(n, spec.networkOptions?.[n]));
    for (const d of spec.dependsOn ?? []) f.item(G.depends_on, 'depends_on', `${d.service} (${d.condition})`);
    if (spec.healthcheck) healthFields(spec.healthcheck, f);
    for (const [k, v] of Object.entries(spec.labels ?? {})) {
      if (f.tainted('labels')) m.taintDerived(k);
      f.add(G.labels, k, `labels.${k}`, v, m.value(k, v));
    }
    if (spec.restart !== undefined) f.add(G.restart, '', 'restart', spec.restart);
    if (spec.user !== undefined) f.add(G.user, '', 'user', spec.user);
    if (spec.workingDir !== undefined) f.add(G.working_dir, '', 'working_dir', spec.workingDir);
    if (spec.privileged) f.add(G.privileged, '', 'privileged', 'true');
    if (spec.networkMode !== undefined) f.add(G.network_mode, '', 'network_mode', spec.networkMode);
    if (spec.pid !== undefined) f.add(G.pid, '', 'pid', spec.pid);
    for (const c of spec.capAdd ?? []) f.item(G.cap_add, 'cap_add', c);
    for (const d of spec.devices ?? []) f.item(G.devices, 'devices', d);
    for (const v of spec.volumesFrom ?? []) f.item(G.volumes_from, 'volumes_from', v);
    extraFields(spec, f);
  }
  const r = replicas ?? spec?.replicas;
  if (r !== undefined) f.add(G.replicas, '', 'replicas', String(r));
  return f.out;
}

/** EXTRA_KEYS as extraFields walks them, made once (every spec of a plan is walked two or three times): each key's group follows the core fields in EXTRA_KEYS's order; container_name is left out of the field diff, as it always was. */
const EXTRA_FIELDS = Object.entries(EXTRA_KEYS)
  .map(([key, { field }], i) => ({ key, field, group: GROUPS.length + i }))
  .filter((x) => x.field !== 'containerName');

/**
 * Every other setting a service carries (dns, extra_hosts, sysctls, security_opt, logging, userns_mode, ipc,
 * tmpfs, ulimits, device requests, …), one diff line per value under its compose key: the plan is what the
 * person who comments /apply approves, and a change of one read only "config changed", with no line saying
 * what changed — `security_opt: seccomp=unconfined` where the policy allows it, `dns` or `extra_hosts`
 * sending the service's traffic elsewhere. Ordered after the core fields, in EXTRA_KEYS's order.
 */
function extraFields(spec: ServiceSpec, f: Fields): void {
  for (const { key, field, group } of EXTRA_FIELDS) {
    const v = (spec as unknown as Record<string, unknown>)[field];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) f.item(group, key, typeof x === 'string' ? x : JSON.stringify(x));
    else if (key === 'logging') {
      const l = v as Logging;
      if (l.driver !== undefined) f.add(group, '', 'logging.driver', l.driver);
      for (const [k, x] of Object.entries(l.options)) f.add(group, k, `logging.options.${k}`, x);
    } else if (key === 'ulimits') for (const [k, u] of Object.entries(v as Record<string, Ulimit>)) f.add(group, k, `ulimits.${k}`, u.soft === u.hard ? String(u.soft) : `${u.soft}:${u.hard}`);
    // tmpfs paths and sysctl names are parts of values (`/t${S}:size=1m`, `- net.x${S}=1`): masked with the value
    else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v as Record<string, unknown>)) f.add(group, k, `${key}.${f.tainted(key) ? MASK : k}`, String(x));
    else f.add(group, '', key, key === 'cpus' ? String((v as number) / 1e9) : String(v));
  }
  // gpus: and deploy.resources.reservations.devices (a secret under deploy: taints them with the rest of deploy)
  for (const r of spec.deviceRequests ?? []) f.item(G.device_requests, 'deploy.devices', JSON.stringify(r));
  if (spec.restartMaxRetries !== undefined) f.add(G.restart, 'max', 'restart.max_retries', String(spec.restartMaxRetries));
}

function healthFields(h: Healthcheck, f: Fields) {
  f.add(G.healthcheck, '0', 'healthcheck.test', JSON.stringify(h.test ?? []), f.argsOf('healthcheck.test', h.test ?? []));
  // A timing of 0 is one the files leave out: the image's HEALTHCHECK sets it, or Docker's default does; not shown.
  if (h.intervalMs) f.add(G.healthcheck, '1', 'healthcheck.interval', formatComposeDuration(h.intervalMs));
  if (h.timeoutMs) f.add(G.healthcheck, '2', 'healthcheck.timeout', formatComposeDuration(h.timeoutMs));
  if (h.retries) f.add(G.healthcheck, '3', 'healthcheck.retries', String(h.retries));
  if (h.startPeriodMs) f.add(G.healthcheck, '4', 'healthcheck.start_period', formatComposeDuration(h.startPeriodMs));
  if (h.startIntervalMs) f.add(G.healthcheck, '5', 'healthcheck.start_interval', formatComposeDuration(h.startIntervalMs));
}

/** Compares strings with runs of digits compared as numbers: `8:80` < `10:80`. */
export function naturalCompare(a: string, b: string): number {
  const ra = a.match(/\d+|\D+/g) ?? [];
  const rb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(ra.length, rb.length); i++) {
    const x = ra[i];
    const y = rb[i];
    if (x === y) continue;
    const nx = /^\d/.test(x);
    const ny = /^\d/.test(y);
    if (nx && ny) {
      const d = Number(x) - Number(y);
      if (d) return d;
    }
    return x < y ? -1 : 1;
  }
  return ra.length - rb.length || (a < b ? -1 : a > b ? 1 : 0);
}

/**
 * Field-level diff of two service specs, one `- field: value` / `+ field: value`
 * line per changed field or list item, in a fixed field order. A changed value
 * that masks to the same text (a secret) reads `+ …: •••••• (changed)`.
 */
export function diffSpecs(
  before: ServiceSpec | undefined,
  after: ServiceSpec | undefined,
  opts: { replicasBefore?: number; replicasAfter?: number; masker?: Masker } = {},
): string[] {
  const m = opts.masker ?? new Masker();
  const b = specFields(before, opts.replicasBefore, m);
  const a = specFields(after, opts.replicasAfter, m);
  const keys = [...new Set([...b.keys(), ...a.keys()])];
  const field = (k: string) => (a.get(k) ?? b.get(k))!;
  keys.sort((x, y) => field(x).group - field(y).group || naturalCompare(field(x).sub, field(y).sub));
  const out: string[] = [];
  for (const k of keys) {
    const fb = b.get(k);
    const fa = a.get(k);
    if (fb && fa && fb.raw === fa.raw) continue;
    if (fb) out.push(`- ${fb.label}: ${fb.shown}`);
    if (fa) out.push(`+ ${fa.label}: ${fa.shown}${fb && fb.shown === fa.shown ? ' (changed)' : ''}`);
  }
  return out;
}

/** The diff lines a change shows, or a note when the old configuration is unknown. */
function changeDiff(c: ResourceChange, m: Masker): { lines: string[]; note?: string } {
  if (c.kind !== 'service' || c.action === 'unchanged') return { lines: [] };
  if (c.action === 'change' && !c.before) {
    return { lines: [], note: 'previous configuration unknown: its containers carry no readable io.berth.config label' };
  }
  if (c.action === 'remove' && !c.before) return { lines: c.replicasBefore !== undefined ? [`- replicas: ${c.replicasBefore}`] : [] };
  return {
    lines: diffSpecs(c.action === 'create' ? undefined : c.before, c.action === 'remove' ? undefined : c.after, {
      masker: m,
      ...(c.action !== 'create' && c.replicasBefore !== undefined ? { replicasBefore: c.replicasBefore } : {}),
      ...(c.action !== 'remove' && c.replicasAfter !== undefined ? { replicasAfter: c.replicasAfter } : {}),
    }),
  };
}

// ---------------------------------------------------------------- escaping

export { escapeMarkdown, sanitizeLine } from '../text/escape.js';

/** A user-controlled name as inline code (GitHub does not link mentions inside code). */
const code = (s: string) => `<code>${escapeMarkdown(s)}</code>`;

/** A fence no line of `lines` can close. */
function fenceFor(lines: readonly string[]): string {
  let longest = 0;
  for (const l of lines) {
    const m = /^ {0,3}(`+)/.exec(l);
    if (m) longest = Math.max(longest, m[1].length);
  }
  return '`'.repeat(Math.max(3, longest + 1));
}

function codeBlock(lang: string, lines: readonly string[]): string[] {
  const fence = fenceFor(lines);
  return [`${fence}${lang}`, ...lines, fence];
}

// ---------------------------------------------------------------- shared

/**
 * The masker for everything shown about `desired` (and specs read back from
 * containers): secret keys, secret variable values, and the fields a secret
 * variable fed, whose shown forms are learnt up front so redaction also covers
 * text no diff shows (plan steps, Docker messages).
 */
export function maskerForSpecs(
  specs: readonly (ServiceSpec | undefined)[],
  secretFields?: SecretFields,
  secretKeys?: readonly string[],
  secretValues?: readonly string[],
  /** deployed specs with the fields a secret fed when they were deployed (changes' `before`, `beforeSecretFields`) */
  deployed: readonly Pick<ResourceChange, 'before' | 'beforeSecretFields'>[] = [],
): Masker {
  const m = new Masker(secretKeys ?? [], secretValues ?? [], secretFields);
  for (const d of deployed) if (d.before && d.beforeSecretFields?.length) m.addSpecFields(d.before, d.beforeSecretFields);
  // The steps carry what a secret made of the deployed containers (their names, the image a rollout keeps
  // serving, anonymous volumes' paths), and that secret may have another value now: each is remembered whole.
  for (const text of secretMadeTexts(deployed)) m.taint(text);
  // What a spec teaches the masker depends on its content alone (its name included, which selects its
  // secret fields): a spec equal to one already learnt (the desired spec a change also carries, the
  // unchanged service read back from its container) teaches nothing new. Learning is specFields's
  // masking itself, so every value any diff line can show is known here (a superset of Masker.spec's).
  const seen = new Set<ServiceSpec>();
  const learnt = new Map<string, ServiceSpec[]>();
  for (const s of specs) {
    if (!s || seen.has(s)) continue;
    seen.add(s);
    const same = learnt.get(s.name);
    // a deployed spec with fields of its own a secret fed masks (and so teaches) what an equal one may not
    if (!m.hasOwnFields(s) && same?.some((x) => sameValue(x, s) && !m.hasOwnFields(x))) continue;
    if (same) same.push(s);
    else learnt.set(s.name, [s]);
    specFields(s, undefined, m, false);
  }
  return m;
}

/**
 * What the plan's steps carry of a deployed spec a secret fed (its io.berth.secret-fields label): the
 * container's name (container_name), the image a start-first rollout keeps serving (image), the paths of the
 * anonymous volumes a recreate mounts again (volumes). The secret may have another value now, so these are
 * remembered whole, as secret values.
 */
export function secretMadeTexts(changes: readonly Pick<ResourceChange, 'before' | 'beforeSecretFields'>[]): string[] {
  const out: string[] = [];
  for (const c of changes) {
    const b = c.before;
    if (!b || !c.beforeSecretFields?.length) continue;
    const tainted = (field: string) => isTaintedField({ [b.name]: c.beforeSecretFields! }, b.name, field);
    if (b.containerName && tainted('container_name')) out.push(b.containerName);
    if (b.image && tainted('image')) out.push(b.image);
    if (tainted('volumes')) for (const m of b.volumes ?? []) if (m.type === 'volume' && !m.source) out.push(m.target);
  }
  return out;
}

/** Equal as JSON data (key order aside, an undefined property as an absent one). */
function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const y = b as unknown[];
    if (a.length !== y.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], y[i])) return false;
    return true;
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let n = 0;
  for (const k in x) {
    if (!Object.hasOwn(x, k) || x[k] === undefined) continue;
    n++;
    if (!Object.hasOwn(y, k) || !sameValue(x[k], y[k])) return false;
  }
  for (const k in y) if (Object.hasOwn(y, k) && y[k] !== undefined) n--;
  return n === 0;
}

function maskerFor(plan: Plan, secretKeys: readonly string[] | undefined, secretValues?: readonly string[]): Masker {
  return maskerForSpecs(
    [...plan.changes.flatMap((c) => [c.before, c.after]), ...(plan.desired?.services ?? []).map((s) => s.spec)],
    plan.desired?.secretFields,
    secretKeys,
    [...(secretValues ?? []), ...secretContents(plan.desired)],
    plan.changes,
  );
}

const ACTION_ORDER: Record<ResourceChange['action'], number> = { create: 0, change: 1, remove: 2, unchanged: 3 };

/** Rows worth a line: everything that changes, and unchanged resources that carry a note. */
function listedChanges(plan: Plan): ResourceChange[] {
  return plan.changes
    .filter((c) => c.action !== 'unchanged' || c.reasons.length > 0)
    .map((c, i) => ({ c, i }))
    .sort((a, b) => ACTION_ORDER[a.c.action] - ACTION_ORDER[b.c.action] || a.i - b.i)
    .map(({ c }) => c);
}

function reasonsOf(c: ResourceChange): string {
  return c.reasons.length ? c.reasons.join(', ') : c.action === 'unchanged' ? '' : c.action;
}

// ---------------------------------------------------------------- rollouts

const FAILURE_WORDS: Record<string, string> = {
  rollback: 'rollback (a failing replica keeps its old container, later batches do not start)',
  pause: 'pause (a failing replica keeps its old container, the rollout stops there)',
  continue: 'continue (a failing replica keeps its old container, later batches go on)',
};

/** One sentence per service the plan rolls out under update_config: order, batches, gate, delay, failure action. */
export function rolloutLines(plan: Plan): { service: string; text: string }[] {
  const out: { service: string; text: string }[] = [];
  for (const d of plan.desired?.services ?? []) {
    const ro = plan.rollout === 'rollback' ? (d.spec.rollout?.rollback ?? d.spec.rollout?.update) : d.spec.rollout?.update;
    if (!ro) continue;
    const gates = plan.nodes.filter((n) => n.kind === 'WaitHealthy' && n.reason === 'rollout gate' && n.target.service === d.spec.name);
    if (!gates.length) continue;
    const batches = plan.nodes.filter((n) => n.kind === 'BatchGate' && n.target.service === d.spec.name).length + 1;
    const startFirst = gates.filter((n) => n.group?.startsWith('start-first:')).length;
    const order = startFirst === gates.length ? 'start-first' : startFirst ? 'start-first (stop-first where the old container is not running)' : 'stop-first';
    const per = Math.ceil(gates.length / batches);
    const parts = [
      `rolls out ${order} in ${batches} batch${batches === 1 ? '' : 'es'} of ${per}`,
      `each new container must pass its gate (${gates[0]!.detail}) before the old one ${startFirst ? `leaves the service’s DNS name, drains ${DRAIN_MS / 1000} s and stops` : 'is removed'}`,
      ...(ro.delayMs && batches > 1 ? [`${formatComposeDuration(ro.delayMs)} between batches`] : []),
      `on failure: ${FAILURE_WORDS[ro.failureAction]}${ro.maxFailureRatio ? `, beyond max_failure_ratio ${ro.maxFailureRatio}` : ''}`,
    ];
    out.push({ service: d.spec.name, text: parts.join('; ') });
  }
  return out;
}

// ---------------------------------------------------------------- Markdown

/** One environment's section of the PR comment. Not split: see split.ts. */
export function renderPlanMarkdown(plan: Plan, opts: RenderOptions): string {
  const m = maskerFor(plan, opts.secretKeys, opts.secretValues);
  const t = (s: string) => escapeMarkdown(m.redact(s));
  const s = summarize(plan);
  const out: string[] = [];

  out.push(`### berth plan for ${code(m.redact(opts.environment))}`, '');
  const meta: string[] = [];
  if (opts.target !== undefined) meta.push(`target ${code(m.redact(opts.target))}`);
  if (opts.headSha) meta.push(`head ${code(opts.headSha.slice(0, 12))}`);
  meta.push(`fingerprint ${code(plan.fingerprint.slice(0, 16))}`);
  out.push(meta.join(' · '), '');

  if (isEmpty(plan)) out.push(`**No changes.** ${summaryLine(s)}.`, '');
  else out.push(`**${summaryLine(s)}**`, '');
  if (opts.notes?.length) out.push(...opts.notes.map((n) => `> ℹ️ ${t(n)}`), '');
  if (opts.unsetVariables?.length)
    out.push(
      ...opts.unsetVariables.map(
        (u) => `> ⚠️ ${code(m.redact(u.file))} uses ${u.names.length === 1 ? 'a variable' : `${u.names.length} variables`} that ${u.names.length === 1 ? 'is' : 'are'} not set: ${u.names.map((n) => code(m.redact(n))).join(', ')}; ${t(unsetAdvice(u.names.length))}`,
      ),
      '',
    );
  const rollouts = rolloutLines(plan);
  // a rollout from a deploy: a secret fed is told as a mask, like the fields it sets
  if (rollouts.length) out.push(...rollouts.map((r) => `> 🔁 service ${code(m.redact(r.service))} ${m.tainted(r.service, 'deploy') ? MASK : t(r.text)}`), '');

  const rows = listedChanges(plan);
  if (rows.length) {
    out.push('| Resource | Action | Why |', '| --- | --- | --- |');
    for (const c of rows) out.push(`| ${c.kind} ${code(m.redact(c.name))} | ${c.action} | ${t(reasonsOf(c))} |`);
    out.push('');
  }

  const diffs = rows.map((c) => ({ c, ...changeDiff(c, m) })).filter((d) => d.lines.length || d.note);
  const totalDiffLines = diffs.reduce((n, d) => n + d.lines.length, 0);
  for (const { c, lines, note } of diffs) {
    const why = c.reasons.length ? `: ${t(c.reasons.join(', '))}` : '';
    out.push(`<details${totalDiffLines <= OPEN_DIFF_LINES ? ' open' : ''}>`, `<summary>${c.kind} ${code(m.redact(c.name))} (${c.action})${why}</summary>`, '');
    if (note) out.push(`*${t(note)}*`, '');
    if (lines.length) out.push(...codeBlock('diff', lines.map((l) => sanitizeLine(m.redact(l)))), '');
    out.push('</details>', '');
  }

  if (!isEmpty(plan)) {
    const planLines = plan.nodes.map((n) => sanitizeLine(m.redact(nodeLine(n))));
    out.push(`<details${plan.nodes.length <= OPEN_PLAN_STEPS ? ' open' : ''}>`, `<summary>Plan (${steps(plan.nodes.length)})</summary>`, '');
    out.push(...codeBlock('text', planLines), '', '</details>', '');
  }
  while (out.length && out[out.length - 1] === '') out.pop();
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------- text

/** The CLI's plain-text plan: summary, per-resource reasons with field diffs, then the plan lines. */
export function renderPlanText(plan: Plan, opts: { secretKeys?: readonly string[]; secretValues?: readonly string[] } = {}): string {
  const m = maskerFor(plan, opts.secretKeys, opts.secretValues);
  const t = (s: string) => sanitizeLine(m.redact(s));
  const s = summarize(plan);
  const out: string[] = [];
  out.push(isEmpty(plan) ? `No changes. ${summaryLine(s)}.` : `Plan: ${summaryLine(s)}.`);
  const rows = listedChanges(plan);
  if (rows.length) out.push('');
  for (const c of rows) {
    const why = reasonsOf(c);
    out.push(`${c.action.padEnd(9)} ${c.kind} ${t(c.name)}${why ? `: ${t(why)}` : ''}`);
    const { lines, note } = changeDiff(c, m);
    if (note) out.push(`    (${note})`);
    for (const l of lines) out.push(`    ${t(l)}`);
  }
  const rollouts = rolloutLines(plan);
  if (rollouts.length) out.push('', ...rollouts.map((r) => `rollout  service ${t(r.service)} ${m.tainted(r.service, 'deploy') ? MASK : t(r.text)}`));
  if (!isEmpty(plan)) {
    out.push('', `Steps (${plan.nodes.length}):`);
    for (const n of plan.nodes) out.push(t(nodeLine(n)));
  }
  out.push('', `Fingerprint: ${plan.fingerprint}`);
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------- JSON

export interface PlanNodeJson {
  id: number;
  kind: NodeKind;
  resource: string;
  reason: string;
  detail?: string;
  group?: string;
  deps: number[];
  target: NodeTarget;
}

export interface ResourceChangeJson {
  kind: ResourceChange['kind'];
  name: string;
  action: ResourceChange['action'];
  reasons: string[];
  replicasBefore?: number;
  replicasAfter?: number;
  /** masked */
  before?: ServiceSpec;
  /** masked */
  after?: ServiceSpec;
  /** the field diff lines the Markdown shows */
  diff: string[];
}

export interface PlanJson {
  formatVersion: 1;
  project: string;
  environment: string;
  fingerprint: string;
  desiredDigest: string;
  observedDigest: string;
  summary: PlanSummary;
  empty: boolean;
  nodes: PlanNodeJson[];
  changes: ResourceChangeJson[];
}

/** Plain JSON with keys sorted at every level, so equal plans serialise identically; `str` maps every string value. */
function sortKeys<T>(value: T, str: (s: string) => string = (s) => s): T {
  if (Array.isArray(value)) return value.map((v) => sortKeys(v, str)) as T;
  if (typeof value === 'string') return str(value) as T;
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = sortKeys(v, str);
    }
    return out as T;
  }
  return value;
}

/** Stable JSON for `--format json`: secret values masked, nothing Docker-internal beyond ids. */
export function planToJson(plan: Plan, opts: { secretKeys?: readonly string[]; secretValues?: readonly string[] } = {}): PlanJson {
  const m = maskerFor(plan, opts.secretKeys, opts.secretValues);
  const r = (s: string) => m.redact(s);
  return {
    formatVersion: 1,
    project: plan.project,
    environment: plan.environment,
    fingerprint: plan.fingerprint,
    desiredDigest: plan.desiredDigest,
    observedDigest: plan.observedDigest,
    summary: summarize(plan),
    empty: isEmpty(plan),
    nodes: plan.nodes.map((n) => ({
      id: n.id,
      kind: n.kind,
      resource: r(n.resource),
      reason: r(n.reason),
      ...(n.detail !== undefined ? { detail: r(n.detail) } : {}),
      ...(n.group !== undefined ? { group: r(n.group) } : {}),
      deps: [...n.deps],
      target: sortKeys(n.target, r),
    })),
    changes: plan.changes.map((c) => ({
      kind: c.kind,
      name: c.name,
      action: c.action,
      reasons: c.reasons.map(r),
      ...(c.replicasBefore !== undefined ? { replicasBefore: c.replicasBefore } : {}),
      ...(c.replicasAfter !== undefined ? { replicasAfter: c.replicasAfter } : {}),
      ...(c.before ? { before: sortKeys(m.spec(c.before), r) } : {}),
      ...(c.after ? { after: sortKeys(m.spec(c.after), r) } : {}),
      diff: changeDiff(c, m).lines.map(r),
    })),
  };
}
