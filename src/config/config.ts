// `.github/berth.yml`: the repository's berth config, read from the default
// branch so a PR can never grant itself targets or permissions. Every problem
// is reported at once, each with its file, line and path.
//
//   project: shop
//   environments:                  # promotion order
//     - name: staging
//       compose: [compose.yml]     # default: what docker compose finds (compose.yaml … and its override file)
//       targets: [local]           # default [local]
//       variables: { TAG: "1.2" }  # for ${VAR} in the compose files
//     - name: production
//       requires: [staging]        # applied there first (same desired digest)
//       appliers: { users: [alice], teams: [ops] }
//       approvals: 1
//       require: { approved: true, mergeable: true }
//       on_failure: halt           # or continue
//       profiles: [debug]          # compose profiles enabled (services without profiles always run)
//       secret_keys: [API_AUTH]    # values never shown (besides *PASSWORD*, *TOKEN*, *KEY*, …)
//       secrets: [DB_PASSWORD]     # from berth's server-side store (berth secrets set), never from the repository
//       parallelism: 4
//       home: /home/deploy              # what ~ stands for in bind sources (~/data:/data)
//       build_image: ghcr.io/acme/{service}:{sha}  # what a service with build: and no image: deploys (CI pushed it)
//       url: https://shop.example.com   # the environment's URL on GitHub's deployments (issue 14)
//       production_environment: true    # GitHub deployment flags (default: true for "production")
//       transient_environment: false
//       apply_on: comment              # or merge (apply the merge commit when a PR merges), push (each push to the default branch)
//   policy:                        # everything denied unless allowed
//     allow_privileged: false
//     bind_mount_allowlist: [/srv/shop, { path: /srv/uploads, writable: true }]  # read-only unless writable
//     allow_container_namespaces: [monitoring-agent]   # containers a service may join (container:NAME)
//     allow_shared_objects: [shop_production_backend]  # networks/volumes this environment did not make that external: true or name: may use
import { posix } from 'node:path';
import { z } from 'zod';
import { closest, didYouMean } from '../text/suggest.js';
import { formatPath, parseYaml, YamlFailure, type PathSeg } from '../compose/yaml.js';
import { ConfigError, formatProblem } from '../errors.js';
import { parseCidr } from '../compose/policy.js';
import { parseRegistryAddress } from '../compose/registries.js';

export const CONFIG_PATH = '.github/berth.yml';

const SLUG_RE = /^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$/;
const TARGET_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const VAR_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

const slug = () =>
  z.string().regex(SLUG_RE, { error: 'must be a lowercase slug: a-z, 0-9, "-" and "_", starting and ending with a letter or digit, at most 63 characters' });

/** A repository-relative file path that stays inside the repository; normalised (`./a/../b.yml` → `b.yml`). */
const repoPath = z
  .string()
  .min(1)
  .transform((p, ctx) => {
    const n = posix.normalize(p.replace(/\\/g, '/'));
    if (posix.isAbsolute(n) || n === '..' || n.startsWith('../') || n === '.') {
      ctx.addIssue({ code: 'custom', message: `"${p}" must be a file path inside the repository` });
      return z.NEVER;
    }
    return n;
  });

const scalar = z.union([z.string(), z.number(), z.boolean()], { error: 'must be a string, number or boolean' }).transform((v) => String(v));

/** A bind_mount_allowlist path: absolute on the target, or relative to the repository; the policy is the repository's, and `~` is an environment's (home:), so it names nothing here. */
const allowedPath = z
  .string()
  .min(1)
  .refine((p) => !p.startsWith('~'), { error: "~ is not supported in the policy (an environment's home: gives ~ its meaning in that environment's bind sources only): use an absolute path, e.g. /srv/app or /home/deploy/data" });

export const PolicySchema = z.strictObject({
  allow_privileged: z.boolean().default(false),
  allow_host_network: z.boolean().default(false),
  allow_host_pid: z.boolean().default(false),
  allow_cap_add: z.array(z.string().regex(/^[A-Za-z_]+$/, { error: 'must be a capability name like NET_ADMIN' }).transform((c) => c.toUpperCase().replace(/^CAP_/, ''))).default([]),
  allow_devices: z.boolean().default(false),
  allow_docker_socket: z.boolean().default(false),
  // A plain path is mounted read-only: a container that could write there could plant a symlink for the next apply.
  bind_mount_allowlist: z.array(z.union([allowedPath, z.strictObject({ path: allowedPath, writable: z.boolean().default(false) })])).default([]),
  /** containers (by Docker name) whose namespaces or volumes a service may join with `container:NAME` */
  allow_container_namespaces: z.array(z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, { error: 'must be a container name' })).default([]),
  allow_host_sysctls: z.boolean().default(false),
  allow_security_opt: z.boolean().default(false),
  allow_host_ipc: z.boolean().default(false),
  allow_host_cgroupns: z.boolean().default(false),
  allow_host_userns: z.boolean().default(false),
  /** CIDR ranges an explicit ipam subnet of a declared network may lie in (each subnet is a route on the host) */
  allow_network_subnets: z.array(z.string().refine((c) => parseCidr(c) !== undefined, { error: 'must be a subnet in CIDR form, e.g. 172.20.0.0/16' })).default([]),
  /** logging drivers besides json-file, local, journald and none (the daemon runs them on the host: they send logs where the compose file says) */
  allow_logging_drivers: z.array(z.string().min(1)).default([]),
  /**
   * registries (host, or host:port) images may come from besides Docker Hub and public names: loopback, private,
   * link-local addresses, localhost, dotless and internal names are refused unless listed (src/compose/registries.ts)
   */
  allow_registries: z
    .array(z.string().refine((r) => typeof parseRegistryAddress(r.trim()) !== 'string', { error: 'must be a registry host, optionally with a port, e.g. registry.corp.example or 127.0.0.1:5000 (no scheme, no path)' }))
    .default([]),
  /** networks and volumes (by Docker name) that berth made for another project, environment or repository, which `external: true` may use */
  allow_shared_objects: z.array(z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, { error: 'must be a Docker network or volume name' })).default([]),
  // plugins the host has: a volume driver may bind host paths or mount shares, a network driver reach anywhere
  allow_volume_drivers: z.array(z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.:/-]*$/, { error: 'must be a volume driver name, e.g. local-persist' })).default([]),
  allow_network_drivers: z.array(z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.:/-]*$/, { error: 'must be a network driver name, e.g. weaveworks/net-plugin:latest' })).default([]),
});

export const EnvironmentSchema = z.strictObject({
  name: slug(),
  // Left out: the files docker compose would find in the repository's root (compose-files.ts).
  compose: z.array(repoPath).min(1).optional(),
  targets: z.array(z.string().regex(TARGET_RE, { error: 'must be a target name: letters, digits, "_", "." and "-"' })).min(1).default(['local']),
  requires: z.array(z.string()).default([]),
  profiles: z.array(z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, { error: 'must be a compose profile name' })).default([]),
  variables: z.record(z.string().regex(VAR_RE, { error: 'must be a variable name: letters, digits and "_", not starting with a digit' }), scalar).default({}),
  appliers: z
    .strictObject({
      users: z.array(z.string().min(1)).default([]),
      teams: z.array(z.string().min(1)).default([]),
    })
    .default({ users: [], teams: [] }),
  approvals: z.number().int().min(0).default(0),
  require: z
    .strictObject({
      approved: z.boolean().optional(),
      mergeable: z.boolean().optional(),
    })
    .default({}),
  on_failure: z.enum(['halt', 'continue']).default('halt'),
  /** environment/label keys (and variables) whose values are secret, besides those whose names look secret */
  secret_keys: z.array(z.string().min(1)).default([]),
  /** names of server-side secrets (berth secrets set) this environment uses: for ${NAME} and compose secrets' environment: NAME */
  secrets: z.array(z.string().regex(VAR_RE, { error: 'must be a secret name: letters, digits and "_", not starting with a digit' })).default([]),
  parallelism: z.number().int().min(1).optional(),
  /**
   * The directory `~` stands for in bind sources: docker compose takes the home of the user it runs as; berth
   * runs as no user of the target, so the default branch names it (and the policy still decides what is bound).
   */
  home: z
    .string()
    .regex(/^\/[^\0]*$/, { error: 'must be an absolute path on the target, e.g. /home/deploy' })
    .transform((p) => (posix.normalize(p).length > 1 ? posix.normalize(p).replace(/\/$/, '') : '/'))
    .optional(),
  /**
   * The image a service with build: and no image: deploys: what CI pushed for it. {service}, {project},
   * {environment} and {sha} (the commit planned: the PR head, the merge commit) are filled in.
   */
  build_image: z
    .string()
    .regex(/^[^\s${}]*(\{(service|project|environment|sha)\}[^\s${}]*)*$/, { error: 'must be an image reference with only {service}, {project}, {environment} and {sha} filled in, e.g. ghcr.io/acme/{service}:{sha}' })
    .optional(),
  // GitHub-native delivery (issue 14)
  url: z
    .string()
    .regex(/^https?:\/\/[^\s<>"'`]+$/, { error: 'must be an http(s) URL without spaces or quotes' })
    .optional(),
  production_environment: z.boolean().optional(),
  transient_environment: z.boolean().default(false),
  apply_on: z.enum(['comment', 'merge', 'push']).default('comment'),
});

export const ConfigSchema = z.strictObject({
  project: slug(),
  environments: z.array(EnvironmentSchema).min(1, { error: 'list at least one environment' }),
  policy: PolicySchema.default(PolicySchema.parse({})),
});

export type BerthConfig = z.output<typeof ConfigSchema>;
export type EnvironmentConfig = BerthConfig['environments'][number];
export type PolicyConfig = BerthConfig['policy'];

interface Issue {
  code: string;
  path: PathSeg[];
  problem: string;
  hint?: string;
}

/** Parses and validates the config text; throws one ConfigError listing every problem. */
export function parseConfig(text: string, file = CONFIG_PATH): BerthConfig {
  let y;
  try {
    y = parseYaml(file, text);
  } catch (e) {
    if (e instanceof YamlFailure)
      throw new ConfigError(e.detail.code, e.detail.problem, { file, ...(e.detail.line !== undefined ? { line: e.detail.line } : {}), ...(e.detail.hint ? { hint: e.detail.hint } : {}) });
    throw e;
  }
  const raw = y.value;
  if (raw === undefined || raw === null) throw new ConfigError('empty_config', 'the config is empty', { file, hint: 'it needs at least project: and environments:' });
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError('invalid_config', 'the config must be a mapping', { file, line: 1 });

  const issues: Issue[] = [];
  const result = ConfigSchema.safeParse(raw);
  if (!result.success) for (const iss of result.error.issues) issues.push(...fromZod(iss, raw));
  // Cross-references are checked on the raw document too, so one pass reports everything.
  issues.push(...crossCheck(raw as Record<string, unknown>));
  if (!issues.length) return result.data!;

  const located = issues.map((i) => ({ ...i, line: y.lineAt(i.path), where: formatPath(i.path) }));
  located.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.where < b.where ? -1 : a.where > b.where ? 1 : 0));
  const lines = located.map((i) => formatProblem(i.problem, { file, ...(i.line !== undefined ? { line: i.line } : {}), ...(i.where ? { path: i.where } : {}), ...(i.hint ? { hint: i.hint } : {}) }));
  const first = located[0]!;
  return fail(
    new ConfigError(located.length === 1 ? first.code : 'invalid_config', first.problem, {
      file,
      ...(first.line !== undefined ? { line: first.line } : {}),
      ...(first.where ? { path: first.where } : {}),
      ...(first.hint ? { hint: first.hint } : {}),
      issues: lines,
    }),
  );
}

const fail = (e: Error): never => {
  throw e;
};

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return v;
}

const show = (v: unknown): string =>
  v === undefined ? 'nothing' : v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a mapping' : typeof v === 'string' ? `"${v}"` : String(v);

/** Walks the schema along a path to the object whose keys are known there. */
function knownKeysAt(path: readonly PropertyKey[]): string[] {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let s: any = ConfigSchema;
  const unwrap = () => {
    for (let i = 0; i < 10 && s?._zod?.def && ['default', 'optional', 'nullable', 'pipe', 'prefault'].includes(s._zod.def.type); i++) s = s._zod.def.innerType ?? s._zod.def.in;
  };
  for (const seg of path) {
    unwrap();
    const def = s?._zod?.def;
    if (def?.type === 'object') s = def.shape[seg as string];
    else if (def?.type === 'array') s = def.element;
    else return [];
  }
  unwrap();
  return s?._zod?.def?.type === 'object' ? Object.keys(s._zod.def.shape) : [];
}

function fromZod(iss: z.core.$ZodIssue, raw: unknown): Issue[] {
  const path = iss.path.filter((p): p is string | number => typeof p !== 'symbol');
  const value = valueAt(raw, iss.path);
  switch (iss.code) {
    case 'unrecognized_keys': {
      const known = knownKeysAt(iss.path);
      return iss.keys.map((k) => ({
        code: 'unknown_key',
        path: [...path, k],
        problem: `unknown key "${k}"`,
        hint: [didYouMean(k, known), `known keys: ${known.join(', ')}`].filter(Boolean).join(' '),
      }));
    }
    case 'invalid_type': {
      if (value === undefined) return [{ code: 'missing_key', path: path.slice(0, -1), problem: `missing required key "${String(path[path.length - 1])}"` }];
      const expected = iss.expected === 'array' ? 'a list' : iss.expected === 'object' ? 'a mapping' : iss.expected === 'int' ? 'an integer' : `a ${iss.expected}`;
      return [{ code: 'invalid_value', path, problem: `must be ${expected}, not ${show(value)}` }];
    }
    case 'invalid_value':
      return [{ code: 'invalid_value', path, problem: `must be one of ${iss.values.map((v) => String(v)).join(', ')}, not ${show(value)}` }];
    case 'invalid_key': {
      const inner = iss.issues[0];
      return [{ code: 'invalid_value', path, problem: `invalid key "${String(path[path.length - 1])}": ${inner?.message ?? iss.message}` }];
    }
    case 'too_small':
      if (iss.origin === 'array')
        return [{ code: 'invalid_value', path, problem: iss.message.startsWith('Too small') ? (Number(iss.minimum) === 1 ? 'must not be empty' : `must list at least ${String(iss.minimum)}`) : iss.message }];
      if (iss.origin === 'string') return [{ code: 'invalid_value', path, problem: 'must not be empty' }];
      return [{ code: 'invalid_value', path, problem: `must be at least ${String(iss.minimum)}, not ${show(value)}` }];
    case 'invalid_format':
    case 'custom':
      return [{ code: 'invalid_value', path, problem: `${iss.message}${iss.code === 'invalid_format' && typeof value === 'string' ? `, not "${value}"` : ''}` }];
    default:
      return [{ code: 'invalid_value', path, problem: iss.message }];
  }
}

/** requires → an existing earlier environment, unique environment names, unique targets; on the raw document (types may be wrong). */
function crossCheck(raw: Record<string, unknown>): Issue[] {
  const issues: Issue[] = [];
  const envs = Array.isArray(raw.environments) ? (raw.environments as unknown[]) : [];
  const obj = (e: unknown): Record<string, unknown> => (e && typeof e === 'object' && !Array.isArray(e) ? (e as Record<string, unknown>) : {});
  const names = envs.map((e) => (typeof obj(e).name === 'string' ? (obj(e).name as string) : undefined));
  const known = [...new Set(names.filter((n): n is string => n !== undefined))];
  const seen = new Map<string, number>();
  envs.forEach((e, i) => {
    const name = names[i];
    if (name !== undefined) {
      const first = seen.get(name);
      if (first !== undefined) issues.push({ code: 'duplicate_environment', path: ['environments', i, 'name'], problem: `environment "${name}" is listed twice`, hint: `environments[${first}] has the same name` });
      else seen.set(name, i);
      // Docker names are <project>-<env>-<service>-<n>: with "staging" and "staging-web", staging's
      // service "web-api" and staging-web's "api" would both be <project>-staging-web-api-1.
      const prefix = known.find((other) => other !== name && name.startsWith(`${other}-`));
      if (prefix !== undefined)
        issues.push({
          code: 'ambiguous_environment',
          path: ['environments', i, 'name'],
          problem: `environment "${name}" starts with "${prefix}-", another environment's name`,
          hint: `their containers' names could collide (<project>-${prefix}-<service>…); rename one, e.g. "${name.replace(/-/g, '_')}"`,
        });
    }
    const requires = obj(e).requires;
    if (Array.isArray(requires))
      requires.forEach((r, j) => {
        if (typeof r !== 'string') return;
        const path: PathSeg[] = ['environments', i, 'requires', j];
        const at = names.indexOf(r);
        if (r === name) issues.push({ code: 'bad_requires', path, problem: `environment "${name}" cannot require itself` });
        else if (at < 0) {
          const dym = closest(r, known);
          issues.push({ code: 'bad_requires', path, problem: `"${r}" is not an environment`, hint: dym ? `did you mean "${dym}"?` : `environments: ${known.join(', ')}` });
        } else if (at > i)
          issues.push({ code: 'bad_requires', path, problem: `"${r}" is listed after "${name ?? `environments[${i}]`}"`, hint: `environments are listed in promotion order: move "${r}" before "${name}"` });
      });
    // A server-side secret and a berth.yml variable of the same name: which one ${NAME} means would be a guess.
    const secrets = obj(e).secrets;
    const variables = obj(obj(e).variables);
    if (Array.isArray(secrets)) {
      const set = new Set<unknown>();
      secrets.forEach((n, j) => {
        const path: PathSeg[] = ['environments', i, 'secrets', j];
        if (set.has(n)) issues.push({ code: 'invalid_value', path, problem: `secret "${String(n)}" is listed twice` });
        set.add(n);
        if (typeof n === 'string' && Object.hasOwn(variables, n))
          issues.push({ code: 'invalid_value', path, problem: `"${n}" is both a server-side secret and a variable`, hint: `remove it from variables: a secret's value lives only on the berth server (berth secrets set … ${n})` });
      });
    }
    const targets = obj(e).targets;
    if (Array.isArray(targets)) {
      const set = new Set<unknown>();
      targets.forEach((t, j) => {
        if (set.has(t)) issues.push({ code: 'invalid_value', path: ['environments', i, 'targets', j], problem: `target "${String(t)}" is listed twice` });
        set.add(t);
      });
    }
  });
  return issues;
}

/** The named environment, or a ConfigError naming the ones there are. */
export function findEnvironment(config: BerthConfig, name: string, file = CONFIG_PATH): EnvironmentConfig {
  const env = config.environments.find((e) => e.name === name);
  if (env) return env;
  const names = config.environments.map((e) => e.name);
  const dym = closest(name, names);
  throw new ConfigError('unknown_environment', `no environment "${name}"`, { file, hint: `${dym ? `did you mean "${dym}"? ` : ''}environments: ${names.join(', ')}` });
}
