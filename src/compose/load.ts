// Compose files → DesiredState. Pure: the caller supplies the texts (from a
// checkout, or GitHub's contents API) and the variables (from the
// environment's config, never the process environment).
import { posix } from 'node:path';
import { desiredNetwork, desiredService, desiredVolume } from '../model/desired.js';
import { sha256 } from '../model/hash.js';
import { ComposeError } from '../errors.js';
import type { DeclaredAt, DependsOn, DesiredState, FileMount, Healthcheck, NetworkSpec, RestartPolicy, RolloutConfig, ServiceExtras, ServiceNetwork, ServiceSpec, VolumeSpec } from '../model/model.js';
import { parseDotenv, DotenvError, type DotenvValue } from './dotenv.js';
import { buildFragment, unsetIn, type At, type DeployResourcesFragment, type FileFragment, type Loc, type RolloutFragment, type ServiceFragment } from './fragment.js';
import { linkJoins } from './joins.js';
import { mergeFragments, mergeService, type Merged } from './merge.js';
import { composeDir, dotenvPath } from './sources.js';
import { MAX_CONTAINER_REFERENCES, MAX_CONTAINERS, MAX_EXPOSED, MAX_NETWORK_ATTACHMENTS, MAX_PORTS, MAX_SERVICES } from './limits.js';
import { comparePorts, normalizeImage, sortRecord, type PathContext } from './normalize.js';
import { checkNetworkReach, checkPolicy, checkVolumeOptions, enforceBindModes, type Policy } from './policy.js';
import { closest } from '../text/suggest.js';
import { placeholdersIn, writtenPlaceholderLine } from '../secrets/placeholder.js';
import { isTaintedAt, isTaintedField, maskTaintedError, secretFieldsOf, secretVariable, type TaintedInput } from './taint.js';
import { formatPath, parseYaml, PROTO_KEY_HINT, YamlFailure, type YamlLimits } from './yaml.js';
import { MAX_FILE_BYTES, MAX_SHIPPED_BYTES, MAX_SHIPPED_FILES, MAX_UPLOADED_BYTES, shipRepositoryBinds, type RepoTree, type ShippedFile } from './repository-files.js';

export interface ComposeFile {
  /** repository-relative path, e.g. `deploy/compose.yml` */
  path: string;
  text: string;
}

export interface LoadComposeOptions {
  project: string;
  environment: string;
  /** values for ${VAR} interpolation */
  variables?: Readonly<Record<string, string>>;
  /** variables that are secret besides secret-looking names (the environment's secret_keys): what they feed is tainted */
  secretKeys?: readonly string[];
  /** absolute path of the checkout; relative bind sources become absolute under it (else they stay `./repo/relative`) */
  repoRoot?: string;
  /** what `~` stands for in bind sources (the environment's home: in berth.yml) */
  home?: string;
  /** the environment's build_image: what a service with build: and no image: deploys ({service}, {project}, {environment}, {sha}) */
  buildImage?: string;
  /** the commit the files were read at (build_image's {sha}) */
  commit?: string;
  /**
   * The files come from GitHub and no checkout is on the target (the app): the commit's file listing. A bind
   * of a repository file or directory is then copied into the container (repository-files.ts) instead of
   * mounted; its content comes through repoBytes.
   */
  repoTree?: RepoTree;
  /** when given, anything it does not allow is refused with the line that asks for it */
  policy?: Policy;
  limits?: YamlLimits;
  /** profiles the environment enables; services without profiles are always on */
  profiles?: readonly string[];
  /** other repository files, read ahead (readComposeSources): env files, includes, extended files, `.env` */
  sources?: ReadonlyMap<string, string | undefined>;
  /** where `secrets: {x: {environment: NAME}}` values come from */
  secrets?: SecretSource;
  /** repository files a config reads (`file:`), by repository-relative path; undefined = does not exist. A path not in the map throws NeedRepoFiles. */
  repoFiles?: ReadonlyMap<string, string | undefined>;
  /** repository files a bind copies (repoTree), their exact bytes, by path; undefined = does not exist. A path not in the map throws NeedRepoFiles. */
  repoBytes?: ReadonlyMap<string, Uint8Array | undefined>;
}

/** Looks up a secret's value by name. Today the environment's variables in berth.yml; a server-side store can stand behind the same port. */
export interface SecretSource {
  value(name: string): string | undefined;
}

/** Thrown when configs read repository files not given yet: the caller reads them and loads again. */
export class NeedRepoFiles extends Error {
  /** `paths`: read as text (configs); `bytes`: read byte for byte (copies of bound files) */
  constructor(
    readonly paths: string[],
    readonly bytes: string[] = [],
  ) {
    super(`compose needs repository files: ${[...paths, ...bytes].join(', ')}`);
  }
}

const error = (code: string, problem: string, at: Loc, hint?: string, quotes: readonly (Loc | undefined)[] = []) => {
  const quoted = quotes.filter((q): q is Loc => q !== undefined);
  return new ComposeError(code, problem, { ...at, ...(hint ? { hint } : {}), ...(quoted.length ? { quotes: quoted } : {}) });
};

/**
 * The desired state, with `secretFields` naming what a secret variable fed.
 * An error that would quote such a value quotes nothing instead (taint.ts).
 */
export function loadCompose(files: readonly ComposeFile[], opts: LoadComposeOptions): DesiredState {
  // Server-side secrets' placeholders come only from interpolation (secrets/placeholder.ts).
  for (const [file, text] of [...files.map((f) => [f.path, f.text] as const), ...(opts.sources ?? new Map<string, string | undefined>()), ...(opts.repoFiles ?? new Map<string, string | undefined>())]) {
    const line = text === undefined ? undefined : writtenPlaceholderLine(text);
    if (line !== undefined)
      throw new ComposeError('reserved_text', 'text starting with "berth-secret." is reserved for server-side secrets', { file, line, hint: 'use ${NAME} with a secret the environment lists under secrets: in .github/berth.yml' });
  }
  const secret = secretVariable(opts.secretKeys);
  // the values of the environment's secret variables: what an error must not quote, nor an image carry
  const secretValues = Object.entries(opts.variables ?? {})
    .filter(([k]) => secret(k))
    .map(([, v]) => v);
  const found: TaintedInput[] = [];
  const unset = new Map<string, Set<string>>();
  let loaded: DesiredState;
  try {
    const textOf = (file: string) => files.find((f) => f.path === file || posix.normalize(f.path) === file)?.text ?? opts.sources?.get(file);
    const desired = withUnsetNamed(() => loadTracked(files, opts, { secret, found, unset }), unset, textOf);
    refuseForgedPlaceholders(desired, opts.variables ?? {}, files[0]!.path);
    refuseMisplacedPlaceholders(desired, files[0]!.path);
    const secretFields = secretFieldsOf(found);
    loaded = Object.keys(secretFields).length ? { ...desired, secretFields } : desired;
  } catch (e) {
    throw maskTaintedError(e, found, secretValues);
  }
  refuseSecretReplicaCounts(found);
  refuseSecretImages(found, secretValues);
  return loaded;
}

/**
 * An image is resolved while planning, for every PR (a fork's too), before anyone reviewed it: its registry's
 * host is looked up and its manifest asked for through the target's engine. An image whose text holds the value
 * of one of the environment's secret variables would send that value to whoever runs the registry (or the DNS
 * of its host): refused at its line, quoting nothing of it. A secret-looking name whose value the PR itself
 * gives (`.env`'s `VALKEY_IMAGE`, a default) carries nothing the PR author does not know, and is resolved.
 */
function refuseSecretImages(found: readonly TaintedInput[], secretValues: readonly string[]): void {
  const values = secretValues.filter((v) => v !== '');
  for (const t of found) {
    if (t.path[0] !== 'services' || (t.path[2] !== 'image' && t.path[2] !== 'platform') || t.path.length !== 3) continue;
    if (!values.some((v) => t.value.includes(v))) continue;
    throw new ComposeError('secret_placement', `${t.path[2]} cannot come from a secret variable: planning resolves the image, which would send the secret to its registry (and its host name to DNS)`, {
      file: t.file,
      path: formatPath(t.path),
      ...(t.line !== undefined ? { line: t.line } : {}),
      hint: 'write the image in the compose file, or take it from a variable whose name does not look secret (PASSWORD, SECRET, TOKEN, KEY, …) and that secret_keys does not list',
    });
  }
}

/**
 * What the plan's shape shows cannot be masked: a replica count (one step per replica, `service:web:3`) and a
 * rollout's settings (its batches, delays, gates and failure ratio are steps and their reasons). Such a value
 * from a secret variable is refused at its line; the message quotes nothing of it.
 */
function refuseSecretReplicaCounts(found: readonly TaintedInput[]): void {
  for (const t of found) {
    if (t.path[0] !== 'services') continue;
    const replicas = t.path[2] === 'scale' || (t.path[2] === 'deploy' && t.path[3] === 'replicas');
    const rollout = t.path[2] === 'deploy' && (t.path[3] === 'update_config' || t.path[3] === 'rollback_config');
    if (!replicas && !rollout) continue;
    throw new ComposeError(
      'invalid_value',
      replicas
        ? 'a replica count cannot come from a secret variable (the plan shows one step per replica, so the count would show)'
        : "a rollout setting cannot come from a secret variable (the plan shows the rollout's batches, delays and gates as its steps)",
      {
        file: t.file,
        path: formatPath(t.path),
        ...(t.line !== undefined ? { line: t.line } : {}),
        hint: 'write the value in the compose file, or take it from a variable that is not secret',
      },
    );
  }
}

/**
 * Every placeholder in the loaded state must be one interpolation of a listed
 * secret produced (same name, same hash). The lexical check above sees only
 * text as written; YAML escapes (`"berth\\x2dsecret…"`) and interpolation
 * defaults (`\${X:-berth-secret}.NAME.…`) assemble one it cannot see, which the
 * executor would then try to decrypt.
 */
function refuseForgedPlaceholders(desired: DesiredState, variables: Readonly<Record<string, string>>, file: string): void {
  const listed = placeholdersIn(variables);
  const forged = (v: unknown) => [...placeholdersIn(v)].find(([name, hash]) => listed.get(name) !== hash);
  const places: [string, unknown][] = [
    ...desired.services.map((s) => [`services.${s.spec.name}`, s.spec] as [string, unknown]),
    ...desired.networks.map((n) => [`networks.${n.spec.name}`, n.spec] as [string, unknown]),
    ...desired.volumes.map((v) => [`volumes.${v.spec.name}`, v.spec] as [string, unknown]),
    ...Object.entries(desired.contents ?? {}).map(([k, c]) => [k.replace(':', 's.'), c] as [string, unknown]),
  ];
  for (const [path, v] of places) {
    const bad = forged(v);
    if (bad)
      throw new ComposeError('reserved_text', `text of the form "berth-secret.${bad[0]}.…" is reserved for server-side secrets, and this one was not produced by a secret the environment lists`, {
        file,
        path,
        hint: 'use ${NAME} with a secret the environment lists under secrets: in .github/berth.yml',
      });
  }
}

/**
 * Where a server-side secret may go: what the executor reveals into the container's environment, command and
 * files (its labels keep the placeholder). Anywhere else the plan and the policy would judge the placeholder
 * while the apply ran the value: a bind under `/srv/${S}` passes an allowlist of /srv whatever S holds.
 */
const SECRET_FIELDS: ReadonlySet<string> = new Set(['environment', 'command', 'entrypoint', 'labels', 'files']);

function refuseMisplacedPlaceholders(desired: DesiredState, file: string): void {
  const refuse = (where: string, field: string, name: string) =>
    new ComposeError('secret_placement', `${where}: the server-side secret ${name} is used in ${field}, where berth could check only its placeholder, not what the apply would run`, {
      file,
      path: where.replace(/^service /, 'services.'),
      hint: 'use server-side secrets in environment values, command, entrypoint, healthcheck test and secrets:; write paths, names and modes in the compose file',
    });
  for (const { spec } of desired.services)
    for (const [field, value] of Object.entries(spec)) {
      if (SECRET_FIELDS.has(field)) continue;
      const checked = field === 'healthcheck' ? { ...(value as object), test: [] } : value;
      const [name] = placeholdersIn(checked).keys();
      if (name !== undefined) throw refuse(`service ${spec.name}`, field, name);
    }
  // A volume's driver_opts are passed as written (a password in a CIFS mount's `o:` is what they are for);
  // one that makes it a bind of a host path is refused by the policy whatever its path (checkVolumeOptions).
}

/** The variables a line of a file refers to (`$$` is a dollar sign, not a reference). */
const referencedIn = (line: string) => [...line.matchAll(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)|\$([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1] ?? m[2]).filter((n): n is string => n !== undefined);

/**
 * An unset ${VAR} is "" (as in docker compose), so a value can be refused with the cause out of sight:
 * thingsboard's `external: {name: ${TB_LOG_VOLUME}}` refused for being empty, `image: ${IMAGE}:${BRANCH}-ci`
 * for being `:-ci`. Such a refusal names the unset variables its line refers to, or, for an empty value
 * located at no line of its own, the file's unset variables.
 */
function withUnsetNamed<T>(load: () => T, unset: ReadonlyMap<string, ReadonlySet<string>>, textOf: (file: string) => string | undefined): T {
  try {
    return load();
  } catch (e) {
    if (!(e instanceof ComposeError) || e.file === undefined) throw e;
    const inFile = unset.get(e.file) ?? new Set<string>();
    const line = e.line === undefined ? undefined : textOf(e.file)?.split('\n')[e.line - 1];
    let names = line === undefined ? [] : [...new Set(referencedIn(line))].filter((n) => inFile.has(n));
    if (!names.length && e.problem.includes('""')) names = [...inFile];
    if (!names.length) throw e;
    const which = `${names.length === 1 ? 'variable' : 'variables'} ${names.sort().join(', ')}, unset here, became ""`;
    throw new ComposeError(e.code, e.problem, { file: e.file, ...(e.line !== undefined ? { line: e.line } : {}), ...(e.path !== undefined ? { path: e.path } : {}), hint: e.hint ? `${which}; ${e.hint}` : `${which}: set ${names.length === 1 ? 'it' : 'them'} in the environment's variables in .github/berth.yml or in the .env` });
  }
}

function loadTracked(files: readonly ComposeFile[], opts: LoadComposeOptions, tracked: { secret: (name: string) => boolean; found: TaintedInput[]; unset: Map<string, Set<string>> }): DesiredState {
  if (!files.length) throw new ComposeError('no_compose_files', 'no compose files given');
  // A `.env` (the first file's, or an included file's) whose value used a secret variable relays it
  // (`RELAY=${DB_PASSWORD}`): that variable is secret too, wherever compose files use it.
  const relayed = new Set<string>();
  const taint = { found: tracked.found, secret: (name: string) => tracked.secret(name) || relayed.has(name) };
  // Relative paths in every file resolve against the first file's directory, as compose does.
  const baseDir = composeDir(files[0]!.path);
  const paths: PathContext = { baseDir, ...(opts.repoRoot ? { repoRoot: opts.repoRoot } : {}), ...(opts.home ? { home: opts.home } : {}) };
  const sources = opts.sources ?? new Map<string, string | undefined>();
  const readFile = (p: string) => sources.get(p);
  // file → variables a plain ${VAR} there used without a value: "" as in docker compose, and a plan warning
  const unset = tracked.unset;
  const variables: Record<string, string> = { ...dotenvDefaults([{ v: dotenvPath(files[0]!.path) }], readFile, opts.variables ?? {}, unset, taint.secret, relayed), ...(opts.variables ?? {}) };
  // docker compose names the project before it interpolates, so an unset ${COMPOSE_PROJECT_NAME} is the project's
  // name: here the one every container, network and volume name of the environment starts with (names in model.ts).
  const composeNameSet = Object.hasOwn(variables, 'COMPOSE_PROJECT_NAME');
  if (!composeNameSet) variables.COMPOSE_PROJECT_NAME = `${opts.project}-${opts.environment}`;
  const notes: string[] = [];

  /** `extended`: the file lends this service to an `extends:` (only it, and what it extends in the file, is built) */
  const parse = (path: string, text: string, ctx: PathContext, vars: Record<string, string> = variables, extended?: string): FileFragment => {
    let y;
    try {
      y = parseYaml(path, text, opts.limits);
    } catch (e) {
      if (e instanceof YamlFailure)
        throw new ComposeError(e.detail.code, e.detail.problem, { file: path, ...(e.detail.line !== undefined ? { line: e.detail.line } : {}), ...(e.detail.hint ? { hint: e.detail.hint } : {}) });
      throw e;
    }
    const onlyServices = extended === undefined ? undefined : extendsChain(y.value, extended);
    // env_file, include and extends.file paths resolve as binds do: a file listed after the first (an override in
    // another directory) resolves them from the first file's directory, as docker compose (compose-go resolves every
    // relative path after the merge, against the project's directory); an included or extended file from its own.
    return buildFragment(y, { variables: vars, paths: ctx, fileDir: ctx.baseDir, readFile, taint, unset, ...(onlyServices ? { onlyServices } : {}) });
  };
  /**
   * another repository file (included or extended): its relative paths resolve against its own directory, or,
   * for an included file, its entry's project directory (`dir`)
   */
  const otherFiles = new Map<string, FileFragment>();
  const varsIds = new WeakMap<Record<string, string>, number>();
  let nextVarsId = 0;
  const idOf = (v: Record<string, string>) => {
    let id = varsIds.get(v);
    if (id === undefined) varsIds.set(v, (id = nextVarsId++));
    return id;
  };
  const other = (path: string, at: Loc, what: string, vars?: Record<string, string>, extended?: string, dir = composeDir(path)): FileFragment => {
    // an included file interpolates with its own variables and resolves from its project directory (see
    // withIncludes): cached apart from extended files, per (directory, variables), and an extended file per service it lends
    const key = vars ? `${path}\0included\0${dir}\0${idOf(vars)}` : extended !== undefined ? `${path}\0extends\0${extended}` : path;
    const known = otherFiles.get(key);
    if (known) return known;
    const text = readFile(path);
    if (text === undefined) throw error('missing_file', `${what} ${path} not found in the repository`, at, 'add the file or fix the path (relative to the file that names it)');
    const f = parse(path, text, { ...paths, baseDir: dir }, vars ?? variables, extended);
    otherFiles.set(key, f);
    return f;
  };

  // An included file is its own compose project in docker compose: its project directory is the entry's
  // `project_directory` (relative to the including file's directory), else the directory of the entry's
  // first path; every relative path of the entry's files resolves from it. Its interpolation defaults are
  // the entry's `env_file`s (relative to the including file's directory, each required, a later one over an
  // earlier one, `/dev/null` none), else the `.env` in the project directory when there is one — below the
  // including side's variables (berth.yml variables, secrets and the including file's .env), which win.
  // Returned lowest precedence first, for mergeFragments (a later fragment overrides an earlier one, under
  // the override-file rules): docker compose imports each include entry's model in turn into the
  // including file's, and a service, network or volume defined on both sides is merged with the side
  // already there winning — the including file over all it includes, an earlier entry over a later one,
  // an included file over what it includes itself. So the entries go in reverse, each entry's own paths
  // (a base and its overrides) in their order, and the including file last.
  // An included project's variables read once per including side's variables (a file may list the same include many times).
  const includedVars = new WeakMap<Record<string, string>, Map<string, Record<string, string>>>();
  const varsFor = (dir: string, envFiles: readonly At<string>[] | undefined, vars: Record<string, string>) => {
    let byPath = includedVars.get(vars);
    if (!byPath) includedVars.set(vars, (byPath = new Map()));
    const files = envFiles ?? [{ v: dir ? `${dir}/.env` : '.env' }];
    const key = `${envFiles ? 'files' : 'dir'}\0${files.map((f) => f.v).join('\0')}`;
    let incVars = byPath.get(key);
    if (!incVars) byPath.set(key, (incVars = { ...dotenvDefaults(files, readFile, vars, unset, taint.secret, relayed), ...vars }));
    return incVars;
  };
  // Files brought in by include: counted as they are expanded (each time a file is included again, it counts again),
  // so a file including the next twice, seventeen deep, is refused at the count instead of growing without bound.
  let included = 0;
  const withIncludes = (f: FileFragment, stack: string[], vars: Record<string, string>): FileFragment[] => {
    const entries: FileFragment[][] = [];
    for (const inc of f.include ?? []) {
      const dir = inc.v.projectDir ?? composeDir(inc.v.paths[0]!);
      const incVars = varsFor(dir, inc.v.envFiles, vars);
      const entry: FileFragment[] = [];
      for (const path of inc.v.paths) {
        if (stack.includes(path)) throw error('include_cycle', `include cycle: ${[...stack, path].join(' -> ')}`, inc.at, 'remove one of the includes');
        if (++included > MAX_INCLUDED_FILES) throw error('too_large', `the includes bring in more than ${MAX_INCLUDED_FILES} files (a file included again counts again)`, inc.at, 'include each file once, and fewer of them');
        const g = other(path, inc.at, 'included file', incVars, undefined, dir);
        for (const x of withIncludes(g, [...stack, path], incVars)) entry.push(x);
      }
      entries.push(entry);
    }
    const out: FileFragment[] = [];
    for (const entry of entries.reverse()) for (const x of entry) out.push(x);
    out.push(f);
    return out;
  };

  const fragments: FileFragment[] = [];
  for (const f of files) {
    const frag = parse(f.path, f.text, paths);
    fragments.push(...withIncludes(frag, [posix.normalize(f.path)], variables));
  }
  const extensions: [string, string][] = [];
  for (const f of fragments) resolveExtends(f, other, (service, base) => extensions.push([service, base]));
  inheritTaint(extensions, taint.found);
  const name = fragments.find((f) => f.name)?.name;
  if (name && name.v !== opts.project) notes.push(`the compose project name "${name.v}" (${name.at.file}:${name.at.line}) is not used: berth names this project "${opts.project}" (from .github/berth.yml)`);
  // Stacks read it to find their own containers (mailcow's scheduler filters on com.docker.compose.project=${COMPOSE_PROJECT_NAME}).
  const composeName = variables.COMPOSE_PROJECT_NAME;
  if (composeNameSet && composeName !== opts.project && composeName !== `${opts.project}-${opts.environment}`) {
    const where = Object.hasOwn(opts.variables ?? {}, 'COMPOSE_PROJECT_NAME') ? 'the environment\'s variables' : dotenvPath(files[0]!.path);
    notes.push(`COMPOSE_PROJECT_NAME "${composeName}" (${where}) is not the project's name: berth names this project "${opts.project}" (from .github/berth.yml), and its containers carry io.berth.* labels, not docker compose's com.docker.compose.* ones (a service that finds containers by com.docker.compose.project finds none)`);
  }

  const merged = mergeFragments(fragments);
  // `name:` is the object's name in Docker (compose's rule); two declarations of one kind cannot share it.
  for (const [kind, objects] of [['network', merged.networks], ['volume', merged.volumes]] as const) {
    const seen = new Map<string, string>();
    for (const o of objects.values()) {
      const dn = o.dockerName?.v;
      if (!dn) continue;
      const other = seen.get(dn);
      if (other !== undefined) throw error('duplicate_name', `${kind}s ${other} and ${o.name} are both named "${dn}"`, o.dockerName!.at, `give each ${kind} its own name:`);
      seen.set(dn, o.name);
    }
  }
  // env files are read for the services the profiles keep (compose since 2.34): an inactive one may name a missing file
  applyProfiles(merged, enabledProfiles(opts.profiles ?? [], variables, notes, taint.secret));
  // What berth cannot honour refuses the services that will run; docker compose never creates the others.
  for (const s of merged.services.values()) if (s.refused) throw s.refused;
  resolveEnvFiles(merged.services.values(), taint, unset);
  resolveLabelFiles(merged.services.values(), unset);
  applyLinks(merged);
  linkJoins(merged.services, notes);
  // An external network is joined as it is: docker compose ignores its other keys (Coolify's production
  // override turns a network it declared with driver: bridge external), so they are noted and dropped.
  for (const n of merged.networks.values()) {
    if (!n.external?.v) continue;
    const ignored = (['driver', 'internal', 'attachable', 'labels', 'ipam', 'driverOpts', 'enableIpv6'] as const).filter((k) => (k === 'labels' ? !!n.labels?.size : n[k] !== undefined));
    if (!ignored.length) continue;
    const keyOf = { driver: 'driver', internal: 'internal', attachable: 'attachable', labels: 'labels', ipam: 'ipam', driverOpts: 'driver_opts', enableIpv6: 'enable_ipv6' } as const;
    notes.push(`network ${n.name} is external (${n.external.at.file}${n.external.at.line !== undefined ? `:${n.external.at.line}` : ''}): ${ignored.map((k) => keyOf[k]).join(', ')} ${ignored.length === 1 ? 'is' : 'are'} not used, as docker compose joins an external network as it is`);
    for (const k of ignored) delete n[k];
  }
  if (opts.buildImage) nameBuiltImages(merged, opts, notes);
  validate(merged);
  // compose-go cuts a list entry at its first "=" and trims nothing: `A = 1` sets a variable named "A " to " 1",
  // as berth does. Docker passes it on, but a shell or a program looking up A finds nothing: noted, not refused.
  for (const s of merged.services.values())
    for (const [k, v] of s.environment ?? [])
      if (k.trim() !== k)
        notes.push(`service ${s.name}: environment ${JSON.stringify(k)} (${v.at.file}${v.at.line !== undefined ? `:${v.at.line}` : ''}) has spaces around its name, which docker compose keeps, as berth does: a shell or a program looking up ${k.trim() || 'the variable'} will not find it; write ${k.trim() || 'NAME'}=… with no space around the =`);
  for (const s of merged.services.values()) if (s.attach) notes.push(`service ${s.name} has attach: (${s.attach.file}:${s.attach.line}); it chooses which logs docker compose up shows in the foreground and has no effect on a deployment`);
  // As docker compose: a service scaled to 0 has no container (one it had is removed, as a scale down), while
  // the networks and volumes it names are still made, and no one waits for it to be healthy or to complete.
  for (const s of merged.services.values())
    if (s.replicas?.v === 0) notes.push(`service ${s.name} is scaled to 0 (${s.replicas.at.file}${s.replicas.at.line !== undefined ? `:${s.replicas.at.line}` : ''}): it has no container (any it had is removed), its networks and volumes are still created, and services that depend on it do not wait for it, as docker compose does`);
  for (const s of merged.services.values()) if (s.develop) notes.push(`service ${s.name} has develop: (${s.develop.file}:${s.develop.line}); it configures docker compose watch on a workstation and has no effect on a deployment`);
  for (const s of merged.services.values())
    if (s.extras.pullPolicy?.v === 'build') notes.push(`service ${s.name} has pull_policy: build (${s.extras.pullPolicy.at.file}:${s.extras.pullPolicy.at.line}); berth does not build images, it deploys ${s.image!.v} as its registry serves it (pulled when missing)`);
  for (const s of merged.services.values()) if (s.build) notes.push(`service ${s.name} has build: (${s.build.file}:${s.build.line}); berth does not build images, it deploys ${s.image!.v} (build and push it in CI)`);
  const shipped = opts.repoTree ? shipRepositoryBinds(merged.services.values(), opts.repoTree, notes, (m) => isTaintedAt(taint.found, m.at), merged.volumes) : new Map<string, ShippedFile[]>();
  if (opts.policy) {
    checkPolicy(merged.services.values(), opts.policy, paths);
    enforceBindModes(merged.services.values(), opts.policy, paths);
  }
  const made = toDesired(merged, opts.project, opts.environment);
  if (opts.policy) {
    // Judged: the networks and volumes the deployment makes, which toDesired decides (as docker compose up, only
    // those some service uses). A declaration no service uses (SonarQube's dual-stack network, selected by a
    // variable left at its default) is never made, so not refused; the rule lives in one place.
    const networks = new Set(made.networks.map((n) => n.spec.name));
    const volumes = new Set(made.volumes.map((v) => v.spec.name));
    checkVolumeOptions([...merged.volumes.values()].filter((v) => volumes.has(v.name)), opts.policy);
    checkNetworkReach([...merged.networks.values()].filter((n) => networks.has(n.name)), opts.policy);
  }
  const desired = withFiles(made, merged, opts, paths.baseDir, shipped, notes);
  const shared = opts.policy?.allow_shared_objects ?? [];
  const unsetVariables = [...unset].filter(([, names]) => names.size).map(([file, names]) => ({ file, names: [...names] }));
  return { ...desired, ...(notes.length ? { notes } : {}), ...(unsetVariables.length ? { unsetVariables } : {}), ...(shared.length ? { sharedObjects: [...shared].sort() } : {}) };
}

/**
 * A service with build: and no image: deploys what the environment's build_image names for it (CI built and
 * pushed it; berth does not build). The plan resolves it to a digest like any image, so a tag not pushed yet
 * is an error there, and a moved one a change.
 */
function nameBuiltImages(merged: Merged, opts: LoadComposeOptions, notes: string[]): void {
  for (const s of merged.services.values()) {
    if (s.image || !s.build) continue;
    if (opts.buildImage!.includes('{sha}') && !opts.commit)
      throw error('missing_image', `service ${s.name} has build: but no image:, and build_image names {sha}, which this load has no commit for`, s.build, 'run it from a git checkout, or add image: next to build:');
    const filled = opts.buildImage!.replace(/\{(service|project|environment|sha)\}/g, (_m, k: string) => (k === 'service' ? s.name : k === 'project' ? opts.project : k === 'environment' ? opts.environment : opts.commit!));
    try {
      s.image = { v: normalizeImage(filled), at: s.build };
    } catch (e) {
      throw error('invalid_value', `service ${s.name}: build_image makes "${filled}", which is not an image reference (${(e as { problem?: string }).problem ?? (e instanceof Error ? e.message : String(e))})`, s.build, 'fix build_image in .github/berth.yml on the default branch');
    }
  }
}

/**
 * env_file values, parsed once each service is merged: a ${VAR} in them finds the compose file's variables
 * first, then the service's own environment: (as compose-go reads them since 2025), then the keys read so
 * far (the file's own, the earlier entries'). A value built from a secret is tainted as environment: would be.
 */
function resolveEnvFiles(services: Iterable<ServiceFragment>, taint: { secret: (name: string) => boolean; found: TaintedInput[] }, unset: Map<string, Set<string>>): void {
  const fields = secretFieldsOf(taint.found);
  for (const s of services) {
    if (!s.envFiles?.length) continue;
    const environment = new Map<string, DotenvValue>();
    for (const [k, v] of s.environment ?? []) environment.set(k, { value: v.v, line: v.at.line ?? 0, ...(isTaintedField(fields, s.name, `environment.${k}`) || taint.secret(k) ? { secret: true } : {}) });
    const out = new Map<string, At<string>>();
    const read = new Map<string, DotenvValue>();
    for (const f of s.envFiles) {
      if (f.missing) throw f.missing;
      try {
        for (const [k, v] of parseDotenv(f.text, { raw: f.raw, variables: f.variables, environment, inherited: read, unset: unsetIn(unset, f.file)!, secret: taint.secret })) {
          if (k === '__proto__') throw new ComposeError('invalid_value', 'env_file variable named __proto__, which berth does not accept', { file: f.file, line: v.line, path: k, hint: PROTO_KEY_HINT });
          out.set(k, { v: v.value, at: { file: f.file, line: v.line, path: k } });
          read.set(k, v);
          if (v.secret) taint.found.push({ path: ['services', s.name, 'environment', k], raw: k, value: v.value, file: f.file, line: v.line });
        }
      } catch (e) {
        if (e instanceof DotenvError) throw new ComposeError(e.code, e.message, { file: f.file, line: e.line, ...(e.hint ? { hint: e.hint } : {}) });
        throw e;
      }
    }
    s.envFromFiles = out;
  }
}

/**
 * label_file values, parsed once each service is merged, as compose-go reads them: each file as an env file,
 * a later file's keys over an earlier one's, `labels:` over them all. A ${VAR} in one finds only the labels of
 * the files read before it, then the file's own keys — not the compose file's variables, which compose does not
 * look up there (so one set only there is unset: "" and a warning).
 */
function resolveLabelFiles(services: Iterable<ServiceFragment>, unset: Map<string, Set<string>>): void {
  for (const s of services) {
    if (!s.labelFiles?.length) continue;
    const out = new Map<string, At<string>>();
    const read = new Map<string, DotenvValue>();
    for (const f of s.labelFiles) {
      if (f.missing) throw f.missing;
      let parsed: Map<string, DotenvValue>;
      try {
        parsed = parseDotenv(f.text, { environment: new Map(read), unset: unsetIn(unset, f.file)! });
      } catch (e) {
        if (e instanceof DotenvError) throw new ComposeError(e.code, e.message, { file: f.file, line: e.line, ...(e.hint ? { hint: e.hint } : {}) });
        throw e;
      }
      for (const [k, v] of parsed) {
        if (k === '__proto__') throw new ComposeError('invalid_value', 'label_file label named __proto__, which berth does not accept', { file: f.file, line: v.line, path: k, hint: PROTO_KEY_HINT });
        // berth's own labels say what it manages (as under labels:)
        if (k.toLowerCase().startsWith('io.berth.')) throw new ComposeError('invalid_value', `label ${JSON.stringify(k)}: labels under io.berth. are berth's own`, { file: f.file, line: v.line, path: k, hint: 'rename the label' });
        out.set(k, { v: v.value, at: { file: f.file, line: v.line, path: k } });
        read.set(k, v);
      }
    }
    s.labelsFromFiles = out;
  }
}

/**
 * The `.env` next to the first compose file (or an included project's `.env`, or its entry's `env_file`s):
 * interpolation defaults that the including side's variables override. A file with a location (an include's
 * `env_file`) is required; one without (a `.env`) is read when it is there. A later file's keys override an
 * earlier one's, and a `${VAR}` in one finds the variables first, then the keys read so far (compose-go's
 * GetEnvFromFile).
 */
function dotenvDefaults(
  files: readonly { v: string; at?: Loc; asWritten?: string }[],
  readFile: (p: string) => string | undefined,
  variables: Record<string, string>,
  unset: Map<string, Set<string>>,
  secret: (name: string) => boolean,
  relayed: Set<string>,
): Record<string, string> {
  const out: Record<string, string> = {};
  const read = new Map<string, DotenvValue>();
  for (const { v: path, at, asWritten } of files) {
    const text = readFile(path);
    if (text === undefined) {
      if (at) throw error('missing_file', `include env_file ${asWritten ?? path} not found (looked for ${path} in the repository)`, at, 'add the file to the repository or fix the path (relative to the file that names it)');
      continue;
    }
    try {
      for (const [k, v] of parseDotenv(text, { variables, inherited: read, unset: unsetIn(unset, path)!, secret })) {
        out[k] = v.value;
        read.set(k, v);
        // the including side's variables win over the .env: only a value in effect relays a secret
        if (v.secret && !Object.hasOwn(variables, k)) relayed.add(k);
      }
    } catch (e) {
      if (e instanceof DotenvError) throw new ComposeError(e.code, e.message, { file: path, line: e.line, ...(e.hint ? { hint: e.hint } : {}) });
      throw e;
    }
  }
  return out;
}

/**
 * A service that extends another inherits what a secret fed in it: the taint is recorded against the
 * service whose file held the `${VAR}` (`base`), so `web: {extends: base}` would show base's command
 * in clear under web's name. Conservative: every field tainted in any service of the base's name.
 */
function inheritTaint(extensions: readonly [string, string][], found: TaintedInput[]): void {
  const bases = extensions.filter(([name, base]) => name !== base);
  for (let changed = true, rounds = 0; changed && rounds <= bases.length; rounds++) {
    changed = false;
    for (const [name, base] of bases) {
      const known = new Set(found.filter((t) => t.path[1] === name).map((t) => `${t.file}\0${t.line}\0${t.path.slice(2).join('\0')}`));
      for (const t of found.filter((x) => x.path[0] === 'services' && x.path[1] === base)) {
        const key = `${t.file}\0${t.line}\0${t.path.slice(2).join('\0')}`;
        if (known.has(key)) continue;
        known.add(key);
        found.push({ ...t, path: ['services', name, ...t.path.slice(2)] });
        changed = true;
      }
    }
  }
}

/** `extends:` in one file: the named service (of this file or another) is the base, this service merges onto it. */
/**
 * The services of a file that `extends` of `service` reaches within the file: compose takes the extended
 * service alone from another file (and validates the merged result), so the file's other services are not built.
 */
function extendsChain(file: unknown, service: string): Set<string> {
  const services = file && typeof file === 'object' && !Array.isArray(file) ? (file as Record<string, unknown>).services : undefined;
  const all = services && typeof services === 'object' && !Array.isArray(services) ? (services as Record<string, unknown>) : {};
  const chain = new Set<string>();
  for (let cur: string | undefined = service; cur !== undefined && !chain.has(cur); ) {
    chain.add(cur);
    const s: unknown = all[cur];
    const ext: unknown = s && typeof s === 'object' && !Array.isArray(s) ? (s as Record<string, unknown>).extends : undefined;
    cur = typeof ext === 'string' ? ext : ext && typeof ext === 'object' && (ext as Record<string, unknown>).file === undefined && typeof (ext as Record<string, unknown>).service === 'string' ? ((ext as Record<string, unknown>).service as string) : undefined;
  }
  return chain;
}

/** Files an environment's includes may bring in, a file included again counting again. */
export const MAX_INCLUDED_FILES = 256;
/** How long a chain of `extends:` may be: real files chain two or three; thousands ran the stack out. */
export const MAX_EXTENDS_DEPTH = 64;

function resolveExtends(f: FileFragment, other: (path: string, at: Loc, what: string, vars?: Record<string, string>, extended?: string) => FileFragment, extended: (service: string, base: string) => void): void {
  // Each service of each file resolved once (eight hundred services extending one chain in another file walked it each time).
  const resolvedIn = new WeakMap<FileFragment, Map<string, ServiceFragment>>();
  const resolve = (file: FileFragment, name: string, stack: string[], at: Loc): ServiceFragment => {
    const key = `${file.file}#${name}`;
    if (stack.includes(key)) throw error('extends_cycle', `extends cycle: ${[...stack, key].join(' -> ')}`, at, 'remove one of the extends');
    if (stack.length >= MAX_EXTENDS_DEPTH) throw error('too_deep', `extends chains more than ${MAX_EXTENDS_DEPTH} services`, at, 'extend a service that extends fewer');
    const s = file.services.get(name);
    if (!s) throw error('unknown_service', `extends names service "${name}", which ${file === f ? 'is not a service of this file' : `is not a service of ${file.file}`}`, at);
    if (!s.extendsRef) return s;
    let resolved = resolvedIn.get(file);
    if (!resolved) resolvedIn.set(file, (resolved = new Map()));
    if (resolved.has(name)) return resolved.get(name)!;
    const ref = s.extendsRef;
    const baseFile = ref.v.file && posix.normalize(ref.v.file) !== posix.normalize(file.file) ? other(ref.v.file, ref.at, 'extended file', undefined, ref.v.service) : file;
    const base = resolve(baseFile, ref.v.service, [...stack, key], ref.at);
    extended(s.name, ref.v.service);
    const own: ServiceFragment = { ...s };
    delete own.extendsRef;
    const out = mergeService({ ...base, name: s.name, at: s.at }, own);
    out.name = s.name;
    out.at = s.at;
    resolved.set(name, out);
    return out;
  };
  for (const name of [...f.services.keys()]) {
    const s = f.services.get(name)!;
    if (s.extendsRef && !s.removed) f.services.set(name, resolve(f, name, [], s.extendsRef.at));
  }
}

/**
 * The profiles an environment enables: berth.yml `profiles:`, else COMPOSE_PROFILES (berth.yml variables
 * over the `.env`) split at commas, as docker compose reads it without `--profile`; `*` enables every
 * profile. Unset or empty it is the one profile "" (so a service whose profile is an unset `${VAR:-}`
 * runs, the switch pixelfed's file is built on).
 */
function enabledProfiles(listed: readonly string[], variables: Readonly<Record<string, string>>, notes: string[], secret: (name: string) => boolean): ReadonlySet<string> {
  if (listed.length) return new Set(listed);
  const names = [...new Set((variables.COMPOSE_PROFILES ?? '').split(',').map((p) => p.trim()))];
  const named = names.filter(Boolean);
  // A COMPOSE_PROFILES built from a secret (`COMPOSE_PROFILES=${DB_PASSWORD}` in the PR's .env) is split and
  // trimmed here, so no search for the secret's value would find its pieces in the note: they are not named.
  const which = secret('COMPOSE_PROFILES') ? 'the profiles' : `profiles ${named.join(', ')}`;
  if (named.length) notes.push(`${which} are enabled by COMPOSE_PROFILES, as docker compose enables them (list profiles: under the environment in .github/berth.yml to choose others)`);
  return new Set(names);
}

/** Services with profiles are deployed only when the environment enables one of them (berth.yml `profiles:`, or COMPOSE_PROFILES). */
function applyProfiles(m: Merged, enabled: ReadonlySet<string>): void {
  const off = new Set<string>();
  const offProfiles: string[] = [];
  let firstAt: Loc | undefined;
  for (const [name, s] of m.services) {
    if (s.profiles?.v.length && !enabled.has('*') && !s.profiles.v.some((p) => enabled.has(p))) {
      m.services.delete(name);
      off.add(name);
      offProfiles.push(...s.profiles.v);
      firstAt ??= s.profiles.at;
    }
  }
  // Every service in a profile the environment does not enable: docker compose refuses (no service selected);
  // planned, it would read as "no changes", or remove what runs.
  if (off.size && !m.services.size) {
    const first = [...off][0]!;
    const profiles = [...new Set(offProfiles)].sort();
    throw error('no_service', `every service is in a profile this environment does not enable (${profiles.join(', ')}), so nothing would be deployed`, firstAt!, `enable the profiles to deploy under profiles: of the environment in .github/berth.yml (or in COMPOSE_PROFILES), or take ${first} out of its profiles`);
  }
  for (const s of m.services.values()) {
    for (const d of s.dependsOn?.values() ?? []) {
      if (!off.has(d.service) || !d.required) continue;
      // A dependency on a service whose profile is off is an error in compose too.
      throw error('unknown_service', `service ${s.name} depends on "${d.service}", which is not enabled in this environment`, d.at, `enable one of its profiles under profiles: of the environment in .github/berth.yml, or mark the dependency required: false`);
    }
  }
}

/** `links: [db:database]`: the alias is added to db on the networks both share, and web starts after db (as compose does). */
function applyLinks(m: Merged): void {
  for (const s of m.services.values()) {
    for (const l of s.links ?? []) {
      const target = m.services.get(l.v.service);
      if (!target) throw error('unknown_service', `service ${s.name} links to "${l.v.service}", which is not a service`, l.at);
      if (!s.dependsOn?.has(l.v.service)) (s.dependsOn ??= new Map()).set(l.v.service, { service: l.v.service, condition: 'service_started', required: true, at: l.at });
      if (l.v.alias === target.name) continue;
      const mine = s.networks?.size ? [...s.networks.keys()] : ['default'];
      const theirs = target.networks?.size ? [...target.networks.keys()] : ['default'];
      for (const net of mine.filter((n) => theirs.includes(n))) {
        const opts = ((target.networkOptions ??= new Map()).get(net) ?? {});
        opts.aliases = [...new Set([...(opts.aliases ?? []), l.v.alias])].sort();
        target.networkOptions.set(net, opts);
      }
    }
  }
}

/**
 * Resolves every config and secret a service uses to its content, puts the
 * content's digest into the service spec (a rotation recreates exactly its
 * users) and the content itself into the desired state for the executor.
 */
function withFiles(d: DesiredState, m: Merged, opts: LoadComposeOptions, baseDir: string, shipped: ReadonlyMap<string, ShippedFile[]>, notes: string[]): DesiredState {
  const contents: Record<string, string> = {};
  const need: string[] = [];
  const needBytes: string[] = [];
  let uploadedBytes = 0;
  /**
   * The repository files the desired state carries (configs' `file:`, copies), each counted once by path: by
   * the size the listing gives before it is read (a read over the limits is refused, never made), by its
   * bytes once it is. `what` says who reads it.
   */
  const carried = new Map<string, number>();
  let carriedBytes = 0;
  const carry = (path: string, bytes: number | undefined, at: Loc, who: string) => {
    if (carried.has(path)) return;
    const smaller = 'bind or read fewer or smaller files, or build them into the image';
    if (bytes !== undefined && bytes > MAX_FILE_BYTES) throw error('too_large', `${path} (${who}) is ${bytes} bytes, more than the ${MAX_FILE_BYTES} bytes berth reads of one repository file`, at, smaller);
    carried.set(path, bytes ?? 0);
    carriedBytes += bytes ?? 0;
    if (carried.size > MAX_SHIPPED_FILES) throw error('too_large', `more than ${MAX_SHIPPED_FILES} repository files are copied into containers or read by configs for this environment (${path}, ${who}, is one more)`, at, smaller);
    if (carriedBytes > MAX_SHIPPED_BYTES) throw error('too_large', `the repository files copied into containers and read by configs for this environment are more than ${MAX_SHIPPED_BYTES} bytes together (${path}, ${who}, makes ${carriedBytes})`, at, smaller);
  };

  const digests = new Map<string, string>();
  const sizes = new Map<string, number>();
  /**
   * A repository file a bind copies (repository-files.ts): its bytes at the commit, read through repoBytes
   * (images and fonts too), kept as base64 in the contents; returns the bytes' digest.
   */
  const copied = (f: ShippedFile, service: string, at: Loc): string | undefined => {
    const key = `file:${f.path}`;
    if (digests.has(key)) return digests.get(key);
    const who = `copied into service ${service}`;
    if (!opts.repoBytes?.has(f.path)) {
      carry(f.path, opts.repoTree?.size(f.path), at, who);
      needBytes.push(f.path);
      return undefined;
    }
    const bytes = opts.repoBytes.get(f.path);
    if (bytes === undefined)
      throw error(
        'repository_bind_missing',
        `service ${service}: ${f.path}, which a bind mount names, is not a file at this commit${opts.repoTree?.complete === false ? ' (GitHub listed the repository only in part, so a directory cannot be copied)' : ''}`,
        at,
        'bind a file the commit holds; keep data in a named volume',
      );
    carry(f.path, bytes.length, at, who);
    contents[key] = Buffer.from(bytes).toString('base64');
    const digest = sha256(bytes);
    digests.set(key, digest);
    sizes.set(key, bytes.length);
    return digest;
  };
  const resolve = (kind: 'config' | 'secret', name: string, refAt: Loc): string | undefined => {
    const key = `${kind}:${name}`;
    if (key in contents) return contents[key];
    const declared = (kind === 'config' ? m.configs : m.secrets).get(name);
    if (!declared) {
      const all = [...(kind === 'config' ? m.configs : m.secrets).keys()];
      const dym = closest(name, all);
      throw error('undeclared_' + kind, `${kind} "${name}" is not declared under the top-level ${kind}s`, refAt, dym ? `did you mean "${dym}"?` : `declare it: ${kind}s: { ${name}: { environment: VARIABLE } }`);
    }
    const src = declared.source;
    let value: string | undefined;
    if (kind === 'secret' && src.from === 'file') {
      // Never read from the repository (every reader of it could read it): the environment's secret of the same
      // name (berth secrets set, listed under secrets:, or a secret variable) stands where compose reads the file.
      value = opts.secrets?.value(name);
      if (value === undefined)
        throw error('secret_in_repository', `secret ${name} reads a file from the repository: secrets never live in the repository`, declared.fileAt ?? declared.at, `store it as a secret of the environment named ${name} (berth secrets set, and secrets: [${name}] in .github/berth.yml), which berth then uses in place of the file, or use environment: naming a secret variable`);
      // the path is not quoted: a secret variable may have built it
      notes.push(`secret ${name}: its file: (${(declared.fileAt ?? declared.at).file}:${(declared.fileAt ?? declared.at).line}) is not read, as secrets never live in the repository; the environment's secret ${name} takes its place`);
    } else if (src.from === 'content') value = src.content;
    else if (src.from === 'environment') {
      value = kind === 'secret' ? opts.secrets?.value(src.variable) : opts.variables?.[src.variable];
      if (value === undefined)
        throw error('missing_variable', `${kind} ${name} reads variable ${src.variable}, which the environment does not define`, declared.at, `add ${src.variable} to the environment's variables in .github/berth.yml${kind === 'secret' ? ' (and to its secret_keys unless its name looks secret)' : ''}`);
    } else {
      const path = posix.normalize(posix.join((src.dir ?? baseDir) || '.', src.path));
      if (src.path.startsWith('/') || path === '..' || path.startsWith('../'))
        throw error('invalid_value', `config ${name}: file ${src.path} is outside the repository`, declared.at, 'give a path relative to the compose file, inside the repository');
      if (!opts.repoFiles?.has(path)) {
        carry(path, opts.repoTree?.size(path), declared.at, `read by config ${name}`);
        need.push(path);
        return undefined;
      }
      value = opts.repoFiles.get(path);
      if (value === undefined) throw error('missing_file', `config ${name}: file ${path} does not exist at this commit`, declared.at, 'add the file or fix the path (relative to the compose file)');
      carry(path, Buffer.byteLength(value, 'utf8'), declared.at, `read by config ${name}`);
    }
    contents[key] = value;
    return value;
  };
  const services = d.services.map((ds) => {
    const frag = m.services.get(ds.spec.name)!;
    const refs = [...(frag.configs ?? []), ...(frag.secrets ?? [])];
    const copies = shipped.get(ds.spec.name) ?? [];
    if (!refs.length && !copies.length) return ds;
    const files: FileMount[] = [];
    const seen = new Map<string, Loc>();
    for (const r of refs) {
      if (seen.has(r.v.target)) throw error('duplicate_target', `service ${ds.spec.name}: two configs or secrets land at ${r.v.target}`, r.at, 'give each a different target');
      seen.set(r.v.target, r.at);
      const content = resolve(r.v.kind, r.v.source, r.at);
      if (content !== undefined) files.push({ ...r.v, digest: sha256(content) });
    }
    let containerBytes = 0;
    for (const f of copies) {
      const other = seen.get(f.target);
      if (other) throw error('duplicate_target', `service ${ds.spec.name}: ${f.path}, copied from the repository by a bind mount, lands at ${f.target}, where a config or secret lands too`, other, 'give each a different target');
      seen.set(f.target, f.at);
      const digest = copied(f, ds.spec.name, f.at);
      if (digest === undefined) continue;
      files.push({ kind: 'file', source: f.path, target: f.target, mode: f.mode, digest });
      // What is uploaded, not what is read: one file bound at many targets, in many services and replicas.
      containerBytes += sizes.get(`file:${f.path}`)!;
      if (containerBytes > MAX_SHIPPED_BYTES)
        throw error('too_large', `service ${ds.spec.name}: the files copied into its container from the repository are more than ${MAX_SHIPPED_BYTES} bytes together`, f.at, 'bind fewer or smaller files, or build them into the image');
    }
    uploadedBytes += containerBytes * Math.max(1, ds.spec.replicas);
    if (uploadedBytes > MAX_UPLOADED_BYTES)
      throw error('too_large', `the files copied from the repository into this environment's containers (every service and replica) are more than ${MAX_UPLOADED_BYTES} bytes together`, copies[0]?.at ?? frag.at, 'bind fewer or smaller files, or build them into the image');
    // A file where another file needs a directory (`./x:/run/secrets` beside the secret /run/secrets/db): the upload would fail.
    for (const t of seen.keys())
      for (let dir = posix.dirname(t); dir !== '/' && dir !== '.'; dir = posix.dirname(dir)) {
        const at = seen.get(dir);
        if (at) throw error('duplicate_target', `service ${ds.spec.name}: a file lands at ${dir}, and another at ${t}, which needs ${dir} to be a directory`, at, 'give each a target that is not the other\'s directory');
      }
    files.sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));
    return desiredService({ ...ds.spec, files });
  });
  if (need.length || needBytes.length) throw new NeedRepoFiles([...new Set(need)].sort(), [...new Set(needBytes)].sort());
  return { ...d, services, ...(Object.keys(contents).length ? { contents } : {}) };
}

function validate(m: Merged): void {
  const names = [...m.services.keys()];
  // Container names are case-sensitive but a service's name is also its DNS alias on its networks, and DNS is not:
  // `web` and `WEB` would answer for each other.
  const folded = new Map<string, string>();
  for (const s of m.services.values()) {
    const other = folded.get(s.name.toLowerCase());
    if (other !== undefined)
      throw error('duplicate_service', `services ${other} and ${s.name} differ only in case`, s.at, 'a service name is also its hostname on the network, and hostnames ignore case: rename one of them');
    folded.set(s.name.toLowerCase(), s.name);
  }
  // The environment as a whole (limits.ts): each service within bounds, a thousand of them are not.
  let containers = 0;
  let ports = 0;
  let exposed = 0;
  let attachments = 0;
  let references = 0;
  let services = 0;
  for (const s of m.services.values()) {
    // Counted whatever its replicas: a service of scale 0 has no container but is still planned and shown.
    if (++services > MAX_SERVICES)
      throw error('too_large', `this environment has more than ${MAX_SERVICES} services (service ${s.name} is number ${services}, counting those of scale 0)`, s.at, 'split the stack into environments of fewer services, or remove the services it does not run');
    containers += s.replicas?.v ?? 1;
    if (containers > MAX_CONTAINERS)
      throw error('too_large', `the services of this environment ask for more than ${MAX_CONTAINERS} containers together (service ${s.name} makes ${containers})`, s.replicas?.at ?? s.at, 'run fewer services or replicas');
    // each replica on each network is a step of the plan (limits.ts): replicas and networks multiply
    attachments += (s.replicas?.v ?? 1) * Math.max(1, s.networks?.size ?? 0);
    if (attachments > MAX_NETWORK_ATTACHMENTS)
      throw error('too_large', `the services of this environment attach their containers to networks more than ${MAX_NETWORK_ATTACHMENTS} times together (service ${s.name} makes ${attachments}: each replica on each of its networks)`, s.networks ? [...s.networks.values()][0]! : s.at, 'attach each service to the few networks it talks on, or run fewer replicas');
    const per = (s.volumes?.length ?? 0) + (s.dependsOn?.size ?? 0) + (s.links?.length ?? 0) + (s.volumesFrom?.length ?? 0) + (s.configs?.length ?? 0) + (s.secrets?.length ?? 0);
    references += (s.replicas?.v ?? 1) * per;
    if (references > MAX_CONTAINER_REFERENCES)
      throw error('too_large', `the containers of this environment refer to more than ${MAX_CONTAINER_REFERENCES} mounts, dependencies and files together (service ${s.name} makes ${references}: each replica's volumes, depends_on, links, volumes_from, configs and secrets)`, s.replicas?.at ?? s.at, 'mount fewer volumes, depend on fewer services, or run fewer replicas');
    ports += s.ports?.length ?? 0;
    if (ports > MAX_PORTS) throw error('too_large', `the services of this environment publish more than ${MAX_PORTS} ports together (service ${s.name} makes ${ports})`, s.ports![0]!.at, 'publish fewer ports (a range counts each of its ports)');
    exposed += s.extras.expose?.v?.length ?? 0;
    if (exposed > MAX_EXPOSED) throw error('too_large', `the services of this environment expose more than ${MAX_EXPOSED} ports together (service ${s.name} makes ${exposed})`, s.extras.expose!.at, 'expose fewer ports (a range counts each of its ports)');
  }
  const containerNames = new Map<string, string>();
  for (const s of m.services.values()) {
    const cn = s.extras.containerName;
    if (!cn?.v) continue;
    const cname = cn.v;
    if ((s.replicas?.v ?? 1) > 1) throw error('invalid_value', `service ${s.name} has container_name ${cn.v} and ${s.replicas!.v} replicas`, cn.at, 'one name fits one container: remove container_name or scale to 1', [s.replicas?.at]);
    const other = containerNames.get(cname);
    if (other !== undefined) throw error('duplicate_container_name', `services ${other} and ${s.name} both use container_name ${cname}`, cn.at, 'give each service its own container_name');
    containerNames.set(cname, s.name);
  }
  const macs = new Map<string, string>();
  for (const s of m.services.values()) {
    const onNetwork = [...(s.networkOptions ?? [])].find(([, o]) => o.macAddress);
    if (s.extras.macAddress?.v && onNetwork)
      throw error('invalid_value', `service ${s.name} sets mac_address for the service and for network ${onNetwork[0]}`, s.extras.macAddress.at, 'set it in one place: under the network it is for (the service-wide one is the address on the network the container is created on)');
    const mac = fixedMac(s);
    if (!mac) continue;
    if ((s.replicas?.v ?? 1) > 1) throw error('invalid_value', `service ${s.name} has mac_address ${mac.v} and ${s.replicas!.v} replicas`, mac.at, 'one MAC address fits one container: remove mac_address or scale to 1', [s.replicas?.at]);
    const other = macs.get(mac.v);
    if (other !== undefined) throw error('invalid_value', `services ${other} and ${s.name} both use mac_address ${mac.v}`, mac.at, 'give each container its own MAC address');
    macs.set(mac.v, s.name);
    const mode = s.networkMode?.v;
    // Docker refuses a MAC with the host's or another container's network; with none there is no interface to give it to.
    if (mode !== undefined && mode !== 'bridge' && mode !== 'default')
      throw error('invalid_value', `service ${s.name}: mac_address cannot be combined with network_mode: ${mode}`, mac.at, 'the MAC address is set on the network the container is created on: remove network_mode, or remove mac_address');
  }
  for (const s of m.services.values()) {
    if (!s.image && s.build)
      throw error('missing_image', `service ${s.name} has build: but no image:`, s.build, `berth does not build images: build and push the image in CI, then add image: (e.g. image: ghcr.io/OWNER/${s.name}:\${TAG}) next to build:`);
    if (!s.image) throw error('missing_image', `service ${s.name} has no image`, s.at, 'berth does not build images: add image: with a pushed image reference');
    if (s.networkMode && s.networks?.size)
      throw error('invalid_value', `service ${s.name}: network_mode and networks cannot be combined`, s.networkMode.at, 'remove one of them');
    for (const [net, at] of s.networks ?? []) {
      if (net === 'default' || m.networks.has(net)) continue;
      const dym = closest(net, [...m.networks.keys()]);
      throw error('undeclared_network', `service ${s.name} uses network "${net}", which is not declared under the top-level networks`, at, dym ? `did you mean "${dym}"?` : `declare it: networks: { ${net}: {} }`);
    }
    for (const mount of s.volumes ?? []) {
      if (mount.v.type !== 'volume' || !mount.v.source || m.volumes.has(mount.v.source)) continue;
      const dym = closest(mount.v.source, [...m.volumes.keys()]);
      throw error('undeclared_volume', `service ${s.name} uses volume "${mount.v.source}", which is not declared under the top-level volumes`, mount.at, dym ? `did you mean "${dym}"?` : `declare it: volumes: { ${mount.v.source}: {} }`);
    }
    for (const d of s.dependsOn?.values() ?? []) {
      const target = m.services.get(d.service);
      if (!target) {
        if (!d.required) continue;
        const dym = closest(d.service, names.filter((n) => n !== s.name));
        throw error('unknown_service', `service ${s.name} depends on "${d.service}", which is not a service`, d.at, dym ? `did you mean "${dym}"?` : `services: ${names.join(', ')}`);
      }
      // Without a healthcheck in the compose files the image's HEALTHCHECK decides (as with docker compose): the
      // apply waits for it and fails that step, naming the container, when the image has none. A healthcheck the
      // files turn off can never be met.
      if (d.condition === 'service_healthy' && target.healthcheck && (target.healthcheck.disable?.v || target.healthcheck.test?.v[0] === 'NONE'))
        throw error('no_healthcheck', `service ${s.name} waits for ${d.service} to be healthy, but ${d.service}'s healthcheck is disabled`, d.at, `give ${d.service} a healthcheck that runs a test, or use condition: service_started`);
    }
    const rp = s.deployRestart;
    if (rp?.maxAttempts && (rp.condition?.v ?? 'any') !== 'on-failure')
      throw error('invalid_value', `service ${s.name}: deploy.restart_policy.max_attempts needs condition: on-failure (Docker counts retries only for on-failure)`, rp.maxAttempts.at, 'set condition: on-failure, or remove max_attempts');
    const h = s.healthcheck;
    for (const [key, r] of [['update_config', s.updateConfig], ['rollback_config', s.rollbackConfig]] as const) {
      if (r?.keys.order !== 'start-first') continue;
      const conflict = startFirstConflict(s);
      if (conflict)
        throw error(
          'start_first_conflict',
          `service ${s.name}: deploy.${key}.order is start-first, but the service ${conflict.what} (${conflict.at.file}${conflict.at.line !== undefined ? `:${conflict.at.line}` : ''}), which the old and the new container cannot hold at the same time`,
          r.orderAt ?? r.at,
          'publish the service through a reverse proxy on its network (the proxy keeps the host port; the service only exposes its port), or use order: stop-first (a short outage per replica while the new container starts)',
          [conflict.at],
        );
    }
  }
  for (const v of m.volumes.values()) {
    if (v.external?.v && (v.driver || v.labels?.size || v.driverOpts)) throw error('invalid_value', `volume ${v.name} is external: it takes no other options`, v.at);
  }
  findCycle(m);
}

/** Depth-first search over depends_on; the first cycle found (in name order) is named in full. */
function findCycle(m: Merged): void {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string): void => {
    state.set(name, 'visiting');
    stack.push(name);
    const s = m.services.get(name)!;
    for (const d of [...(s.dependsOn?.values() ?? [])].sort((a, b) => (a.service < b.service ? -1 : 1))) {
      if (!m.services.has(d.service)) continue;
      const st = state.get(d.service);
      if (st === 'visiting') {
        const cycle = [...stack.slice(stack.indexOf(d.service)), d.service];
        throw error('depends_on_cycle', `depends_on cycle: ${cycle.join(' -> ')}`, d.at, 'remove one of these dependencies');
      }
      if (!st) visit(d.service);
    }
    stack.pop();
    state.set(name, 'done');
  };
  for (const name of [...m.services.keys()].sort()) if (!state.has(name)) visit(name);
}

const fromMap = (m: Map<string, { v: string }> | undefined): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const [k, a] of m ?? []) out[k] = a.v;
  return sortRecord(out);
};

/** start_interval as the spec holds it: only when written and not 0 (0 is Docker's default, as compose sends it), so other files hash as before. */
const startInterval = (h: NonNullable<ServiceFragment['healthcheck']>) => (h.startIntervalMs?.v ? { startIntervalMs: h.startIntervalMs.v } : {});

function serviceSpec(s: ServiceFragment, hasDependency: (name: string) => boolean): ServiceSpec {
  // The network with the highest priority comes first: the container is created on it.
  const priority = (n: string) => s.networkOptions?.get(n)?.priority ?? 0;
  const networks = s.networkMode ? [] : s.networks?.size ? [...s.networks.keys()].sort((a, b) => priority(b) - priority(a) || (a < b ? -1 : a > b ? 1 : 0)) : ['default'];
  const networkOptions: Record<string, ServiceNetwork> = {};
  for (const n of [...networks].sort()) {
    const o = s.networkOptions?.get(n);
    if (o && Object.keys(o).length) networkOptions[n] = o;
  }
  const extras: ServiceExtras = {};
  for (const [k, a] of Object.entries(s.extras)) if (a && a.v !== undefined) (extras as Record<string, unknown>)[k] = a.v;
  if (Object.keys(networkOptions).length) extras.networkOptions = networkOptions;
  // deploy.resources wins over cpus, mem_limit, pids_limit and mem_reservation, as docker compose applies it (whichever is
  // written first, in whichever file), unless it is not above 0: compose then keeps the service's own (0 alone is no
  // limit, as before; a pids limit of -1 alone is no limit too, shown and sent as pids_limit: -1 is)
  for (const [k, d] of Object.entries(s.deployResources ?? {}) as [keyof DeployResourcesFragment, At<number> | undefined][])
    if (d && (d.v > 0 || extras[k] === undefined)) extras[k] = d.v;
  // deploy.restart_policy wins over restart:, as docker compose applies it
  let restart: RestartPolicy = s.restart?.v ?? 'no';
  if (s.deployRestart) {
    const condition = s.deployRestart.condition?.v ?? 'any';
    restart = condition === 'none' ? 'no' : condition === 'any' ? 'always' : condition;
    delete extras.restartMaxRetries;
    if (s.deployRestart.maxAttempts) extras.restartMaxRetries = s.deployRestart.maxAttempts.v;
  }
  const dependsOn: DependsOn[] = [...(s.dependsOn?.values() ?? [])]
    .filter((d) => hasDependency(d.service))
    .map((d): DependsOn => ({ service: d.service, condition: d.condition, ...(d.restart ? { restart: true as const } : {}) }))
    .sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : 0));
  let healthcheck: Healthcheck | undefined;
  if (s.healthcheck) {
    const h = s.healthcheck;
    if (!h.disable?.v && !h.test) {
      // No test (`disable: false`, or timings only, as immich writes it): the image's HEALTHCHECK runs, and
      // what is left out is the image's too (Docker fills an empty test and zero timings from the image).
      healthcheck = { test: [], intervalMs: h.intervalMs?.v ?? 0, timeoutMs: h.timeoutMs?.v ?? 0, retries: h.retries?.v ?? 0, startPeriodMs: h.startPeriodMs?.v ?? 0, ...startInterval(h) };
    } else
      // A timing left out is 0, as docker compose sends it: Docker takes the image's HEALTHCHECK timing then
      // (baserow's backend image checks every 60s), else its own (30s interval and timeout, 3 retries).
      healthcheck = { test: h.disable?.v ? ['NONE'] : h.test!.v, intervalMs: h.intervalMs?.v ?? 0, timeoutMs: h.timeoutMs?.v ?? 0, retries: h.retries?.v ?? 0, startPeriodMs: h.startPeriodMs?.v ?? 0, ...startInterval(h) };
  }
  const capAdd = [...new Set((s.capAdd ?? []).map((c) => c.v))].sort();
  const devices = [...new Set((s.devices ?? []).map((d) => d.v))].sort();
  const spec: ServiceSpec = {
    ...extras,
    name: s.name,
    image: s.image!.v,
    ...(s.command ? { command: s.command.v } : {}),
    ...(s.entrypoint ? { entrypoint: s.entrypoint.v } : {}),
    // env_file values first, environment: wins (compose's order)
    environment: sortRecord(Object.fromEntries(Object.entries({ ...fromMap(s.envFromFiles), ...fromMap(s.environment) }).filter(([k]) => !s.unsetEnvironment?.has(k)))),
    ...(s.unsetEnvironment?.size ? { unsetEnvironment: [...s.unsetEnvironment.keys()].sort() } : {}),
    ports: (s.ports ?? []).map((p) => p.v).sort(comparePorts),
    volumes: (s.volumes ?? []).map((m) => m.v).sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0)),
    networks,
    dependsOn,
    ...(healthcheck ? { healthcheck } : {}),
    labels: sortRecord({ ...fromMap(s.labelsFromFiles), ...fromMap(s.labels) }),
    restart,
    ...(s.user ? { user: s.user.v } : {}),
    ...(s.workingDir ? { workingDir: s.workingDir.v } : {}),
    replicas: s.replicas?.v ?? 1,
    ...(s.privileged?.v ? { privileged: true } : {}),
    ...(s.networkMode ? { networkMode: s.networkMode.v } : {}),
    ...(s.pid ? { pid: s.pid.v } : {}),
    ...(capAdd.length ? { capAdd } : {}),
    ...(devices.length ? { devices } : {}),
    ...(s.volumesFrom?.length ? { volumesFrom: s.volumesFrom.map((v) => v.v) } : {}),
  };
  if (s.updateConfig || s.rollbackConfig)
    spec.rollout = { ...(s.updateConfig ? { update: rolloutConfig(s.updateConfig) } : {}), ...(s.rollbackConfig ? { rollback: rolloutConfig(s.rollbackConfig) } : {}) };
  return spec;
}

/** compose's defaults for what update_config / rollback_config leave out (Swarm's: one at a time, pause on failure, 5s monitor). */
export function rolloutConfig(f: RolloutFragment): RolloutConfig {
  return { parallelism: 1, delayMs: 0, order: 'stop-first', failureAction: 'pause', monitorMs: 5000, maxFailureRatio: 0, ...f.keys };
}

/**
 * start-first runs the old and the new container of a replica side by side: anything only one
 * container can hold at a time (a fixed host port, a fixed address, the host's network) refuses it.
 */
function startFirstConflict(s: ServiceFragment): { what: string; at: Loc } | undefined {
  const port = (s.ports ?? []).find((p) => p.v.published !== undefined);
  if (port) return { what: `publishes the fixed host port ${port.v.published}`, at: port.at };
  if (s.networkMode?.v === 'host') return { what: 'uses network_mode: host', at: s.networkMode.at };
  if (s.extras.macAddress?.v) return { what: `has the fixed MAC address ${s.extras.macAddress.v}`, at: s.extras.macAddress.at };
  for (const [net, o] of s.networkOptions ?? []) if (o.ipv4Address || o.ipv6Address) return { what: `has the fixed address ${o.ipv4Address ?? o.ipv6Address} on network ${net}`, at: s.networks?.get(net) ?? s.at };
  for (const [net, o] of s.networkOptions ?? []) if (o.macAddress) return { what: `has the fixed MAC address ${o.macAddress} on network ${net}`, at: s.networks?.get(net) ?? s.at };
  return undefined;
}

/** The service's MAC address, written for the service or (the first) for one of its networks, and where. */
function fixedMac(s: ServiceFragment): { v: string; at: Loc } | undefined {
  if (s.extras.macAddress?.v) return { v: s.extras.macAddress.v, at: s.extras.macAddress.at };
  for (const [net, o] of s.networkOptions ?? []) if (o.macAddress) return { v: o.macAddress, at: s.networks?.get(net) ?? s.at };
  return undefined;
}

/** Remembers where a network or volume was declared (outside its spec, so the hash does not depend on line numbers). */
const located = <T extends { at?: DeclaredAt }>(d: T, at: Loc | undefined): T => (at ? { ...d, at: { file: at.file, ...(at.line !== undefined ? { line: at.line } : {}), path: at.path } } : d);

function toDesired(m: Merged, project: string, environment: string): DesiredState {
  const byName = <T extends { name: string }>(a: T, b: T) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const services = [...m.services.values()].map((s) => serviceSpec(s, (n) => m.services.has(n))).sort(byName);

  // Like `docker compose up`, only networks and volumes some service uses are part of the deployment.
  const usedNetworks = new Set(services.flatMap((s) => s.networks));
  const usedVolumes = new Set(services.flatMap((s) => s.volumes.filter((v) => v.type === 'volume' && v.source).map((v) => v.source!)));
  const networks: NetworkSpec[] = [...m.networks.values()].filter((n) => usedNetworks.has(n.name)).map((n) =>
    n.external?.v
      ? { name: n.name, driver: 'bridge', internal: false, attachable: false, labels: {}, external: true, ...(n.dockerName ? { dockerName: n.dockerName.v } : {}) }
      : {
          name: n.name,
          driver: n.driver?.v ?? 'bridge',
          internal: n.internal?.v ?? false,
          attachable: n.attachable?.v ?? false,
          labels: fromMap(n.labels),
          external: false,
          ...(n.dockerName ? { dockerName: n.dockerName.v } : {}),
          ...(n.enableIpv6?.v ? { enableIpv6: true } : {}),
          ...(n.driverOpts && Object.keys(n.driverOpts.v).length ? { driverOpts: n.driverOpts.v } : {}),
          ...(n.ipam ? { ipam: n.ipam.v } : {}),
        },
  );
  // The implicit default network exists only when a service is on it.
  if (!m.networks.has('default') && usedNetworks.has('default'))
    networks.push({ name: 'default', driver: 'bridge', internal: false, attachable: false, labels: {}, external: false });
  networks.sort(byName);

  const volumes: VolumeSpec[] = [...m.volumes.values()]
    .filter((v) => usedVolumes.has(v.name))
    .map((v): VolumeSpec => {
      const dockerName = v.dockerName ? { dockerName: v.dockerName.v } : {};
      if (v.external?.v) return { name: v.name, driver: 'local', labels: {}, external: true, ...dockerName };
      return { name: v.name, driver: v.driver?.v ?? 'local', labels: fromMap(v.labels), external: false, ...dockerName, ...(v.driverOpts && Object.keys(v.driverOpts.v).length ? { driverOpts: v.driverOpts.v } : {}) };
    })
    .sort(byName);

  return {
    project,
    environment,
    services: services.map((spec) => {
      const s = m.services.get(spec.name);
      const where = (at: Loc | undefined) => (at ? { file: at.file, ...(at.line !== undefined ? { line: at.line } : {}), path: at.path } : undefined);
      const image = where(s?.image?.at);
      const pullPolicy = where(s?.extras.pullPolicy?.at);
      return { ...desiredService(spec), ...(image || pullPolicy ? { at: { ...(image ? { image } : {}), ...(pullPolicy ? { pullPolicy } : {}) } } : {}) };
    }),
    networks: networks.map((n) => located(desiredNetwork(n), m.networks.get(n.name)?.at)),
    volumes: volumes.map((v) => located(desiredVolume(v), m.volumes.get(v.name)?.at)),
  };
}
