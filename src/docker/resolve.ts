// Tag → digest pinning, gathered before planning like observed state: each
// image reference is resolved once per plan, in parallel, through the
// engine's distribution endpoint (GET /distribution/{name}/json) with the
// target's server-side registry login, so it works on remote engines too.
// The plan then carries `repo:tag@sha256:…`, which is what the apply creates.
//
// `pull_policy` decides where a reference is resolved (compose's meaning,
// with berth's pinning): `never` and a fresh `daily`/`weekly`/`every_<d>`
// use the image the engine holds (no registry query; it must be there, and
// the same on every target of the environment); every other policy asks the
// registry, so a tag that moved is a change.
import type Dockerode from 'dockerode';
import { BerthError } from '../errors.js';
import { parseDuration } from '../compose/normalize.js';
import { desiredService } from '../model/desired.js';
import type { DeclaredAt, DesiredService, DesiredState } from '../model/model.js';
import type { RegistryCredentials } from './registry-auth.js';
import { normalizeImageRef } from './observe.js';
import { registryOf } from './registry-auth.js';
import { ComposeError } from '../errors.js';
import type { Policy } from '../compose/policy.js';
import { allowRegistryHint, checkImageRegistry, checkImageRegistryResolved, type RegistryLookup } from '../compose/registries.js';

/** The repository's policy on registries, and the berth server's resolver for names (absent: the reference's form only). */
export interface RegistryGate {
  policy: Pick<Policy, 'allow_registries'>;
  lookup?: RegistryLookup;
}

/**
 * Every service's image must come from a registry the policy allows — checked
 * with DNS (when a resolver is given) before the engine is asked anything (the
 * loader checked the form).
 * A refusal is located at the service's image line.
 */
export async function checkRegistries(desired: DesiredState, gate: RegistryGate): Promise<void> {
  const cache = new Map<string, Promise<string | undefined>>();
  const allow = gate.policy.allow_registries ?? [];
  // Looked up in parallel (once per host); the first refused service, in order, is the error.
  const verdicts = await Promise.all(desired.services.map((s) => (gate.lookup ? checkImageRegistryResolved(s.spec.image, allow, gate.lookup, cache) : checkImageRegistry(s.spec.image, allow))));
  for (const [i, s] of desired.services.entries()) {
    const v = verdicts[i]!;
    if (!v.refusal) continue;
    const at = s.at?.image;
    throw new ComposeError('policy_denied', `service ${s.spec.name}: image ${s.spec.image} (${v.refusal}; the target's Docker engine would query it from inside the operator's network) is not allowed by the repository's policy`, {
      ...(at ? { file: at.file, ...(at.line !== undefined ? { line: at.line } : {}), ...(at.path ? { path: at.path } : {}) } : {}),
      hint: allowRegistryHint(v),
    });
  }
}

export type Resolution = { digest: string } | { local: true } | { error: string; at?: 'pullPolicy' };

/** `repo:tag@sha256:…` keeps the tag for people and the digest for the engine. */
export function pinnedRef(image: string, digest: string): string {
  const at = image.indexOf('@');
  return `${at >= 0 ? image.slice(0, at) : image}@${digest}`;
}

/** `docker.io/library/nginx` for `nginx:1`, `nginx@sha256:…` or `docker.io/library/nginx:latest`. */
function repositoryOf(ref: string): string {
  const n = normalizeImageRef(ref).replace(/@.*$/, '');
  const colon = n.lastIndexOf(':');
  return colon > n.lastIndexOf('/') ? n.slice(0, colon) : n;
}

const isPinned = (image: string) => /@sha256:[0-9a-f]{64}$/.test(image);

/** What the engine holds under a reference: its registry digest for that repository (sorted, first), when it came from one. */
interface LocalImage {
  id: string;
  /** the digest of this repository the image was pulled (or pushed) as; absent: built on the host */
  digest?: string;
  /** when the image was last pulled or tagged on the engine (ms), when the engine says */
  lastTagged?: number;
}

async function localImage(docker: Dockerode, image: string): Promise<LocalImage | undefined> {
  const info = (await docker
    .getImage(image)
    .inspect()
    .catch((err: { statusCode?: number }) => {
      if (err?.statusCode === 404) return undefined;
      throw err;
    })) as (Dockerode.ImageInspectInfo & { Metadata?: { LastTagTime?: string } }) | undefined;
  if (!info) return undefined;
  const repo = repositoryOf(image);
  const digests = (info.RepoDigests ?? []).filter((d) => repositoryOf(d) === repo).map((d) => d.slice(d.indexOf('@') + 1)).sort();
  const tagged = Date.parse(info.Metadata?.LastTagTime ?? '');
  return { id: info.Id, ...(digests[0] ? { digest: digests[0] } : {}), ...(Number.isFinite(tagged) && tagged > 0 ? { lastTagged: tagged } : {}) };
}

/**
 * Resolves every distinct image in its registry. An image the registry does
 * not know but the engine holds with no registry digest was built on that
 * host (`docker build`/`docker import`): it runs as it is. An image that came
 * from a registry, or is absent, must resolve — otherwise the plan fails
 * naming the registry, the image and the setting (never halfway through an apply).
 */
export async function resolveImages(docker: Dockerode, images: readonly string[], credentials?: RegistryCredentials): Promise<Map<string, Resolution>> {
  const out = new Map<string, Resolution>();
  await Promise.all(
    [...new Set(images)].map(async (image) => {
      if (isPinned(image)) return void out.set(image, { digest: image.slice(image.indexOf('@') + 1) });
      const authconfig = credentials?.authFor(image);
      try {
        const d = (await docker.getImage(image).distribution(authconfig ? { authconfig } : {})) as { Descriptor?: { digest?: string } };
        const digest = d?.Descriptor?.digest;
        if (!digest) throw new Error('the registry answered without a digest');
        out.set(image, { digest });
      } catch (err) {
        const local = await localImage(docker, image).catch(() => undefined);
        // Built here: no registry digest for this image's own repository (a digest
        // from pushing the same content elsewhere does not make it a registry image).
        if (local && !local.digest) return void out.set(image, { local: true });
        const e = err as { json?: { message?: string }; message?: string };
        const registry = registryOf(image);
        const login = authconfig ? `with the login for ${registry} from ${credentials!.source}` : `without credentials${credentials ? ` (${credentials.source} has no login for ${registry})` : ''}`;
        out.set(image, {
          error: `${(e.json?.message ?? e.message ?? String(err)).replace(/^\(HTTP code \d+\) [^-]*- /, '').trim()} — registry ${registry}, image ${image}, queried ${login}; fix the image reference, or set ${credentials?.setting ?? 'BERTH_DOCKER_CONFIG'} on the berth server to a config.json with a working login for ${registry}`,
        });
      }
    }),
  );
  return out;
}

const DAY_MS = 24 * 3600_000;

/** How long a pulled image stays fresh under a pull_policy; undefined: the policy has no interval. */
export function refreshIntervalMs(policy: string | undefined): number | undefined {
  if (policy === 'daily') return DAY_MS;
  if (policy === 'weekly') return 7 * DAY_MS;
  if (policy?.startsWith('every_')) return parseDuration(policy.slice('every_'.length), 'pull_policy every_');
  return undefined;
}

/** One target an environment deploys to: the first one resolves, every one is checked for engine-held images. */
export interface PinTarget {
  name: string;
  docker: Dockerode;
}

export interface PinOptions {
  credentials?: RegistryCredentials;
  /** the environment's other targets: an image used as the engine holds it must be the same image on each */
  others?: readonly PinTarget[];
  /** ms since the epoch (interval policies) */
  now?: number;
}

/**
 * Every service's image pinned as its pull_policy asks (see the file comment):
 * registry references are resolved once per image, engine-held ones inspected
 * once per image and target. Unresolvable images fail the plan, located at the
 * service's `image:` (or `pull_policy: never`).
 */
export async function pinImages(first: PinTarget, desired: DesiredState, opts: PinOptions = {}): Promise<DesiredState> {
  const now = opts.now ?? Date.now();
  const unpinned = desired.services.filter((s) => !isPinned(s.spec.image));
  const wantsEngine = (s: DesiredService) => s.spec.pullPolicy === 'never' || refreshIntervalMs(s.spec.pullPolicy) !== undefined;
  const inspected = new Map<string, LocalImage | undefined>();
  await Promise.all([...new Set(unpinned.filter(wantsEngine).map((s) => s.spec.image))].map(async (image) => inspected.set(image, await localImage(first.docker, image))));

  // Per service: use the engine's copy, or ask the registry.
  const fromEngine = (s: DesiredService): boolean => {
    if (s.spec.pullPolicy === 'never') return true;
    const interval = refreshIntervalMs(s.spec.pullPolicy);
    const local = inspected.get(s.spec.image);
    return interval !== undefined && local?.lastTagged !== undefined && now - local.lastTagged < interval;
  };
  const registryImages = desired.services.filter((s) => !fromEngine(s)).map((s) => s.spec.image);
  const registry = registryImages.length ? await resolveImages(first.docker, registryImages, opts.credentials) : new Map<string, Resolution>();

  const engineImages = [...new Set(unpinned.filter(fromEngine).map((s) => s.spec.image))];
  const never = new Set(unpinned.filter((s) => s.spec.pullPolicy === 'never').map((s) => s.spec.image));
  const onEngine = new Map<string, Resolution>();
  await Promise.all(
    engineImages.map(async (image) => {
      const local = inspected.get(image);
      if (!local) return void onEngine.set(image, { error: `pull_policy: never, and target ${first.name} has no image ${image} — pull or load it on that host, or change pull_policy to let berth pull it`, at: 'pullPolicy' });
      // Every target runs the same bits: where berth may not pull the digest (never), or the image has
      // none (built on the host), the image each other target holds must be this one.
      if (never.has(image) || !local.digest) for (const t of opts.others ?? []) {
        const there = await localImage(t.docker, image);
        const same = there && (local.digest ? there.digest === local.digest : there.id === local.id);
        if (!same) {
          const what = there ? `holds another image (${(there.digest ?? there.id).slice(0, 19)}) than target ${first.name} (${(local.digest ?? local.id).slice(0, 19)})` : 'does not have it';
          return void onEngine.set(image, { error: `image ${image} is used as the engine holds it (pull_policy), but target ${t.name} ${what} — put the same image on every target of ${desired.environment}, or let berth pull it (pull_policy: missing)`, at: 'pullPolicy' });
        }
      }
      onEngine.set(image, local.digest ? { digest: local.digest } : { local: true });
    }),
  );
  return pinServices(desired, (s) => (fromEngine(s) ? onEngine.get(s.spec.image) : registry.get(s.spec.image)));
}

export class ImageResolutionError extends BerthError {
  constructor(failures: { service: string; image: string; error: string; at?: DeclaredAt }[]) {
    const at = failures.find((f) => f.at)?.at;
    super('image_unresolved', `cannot resolve ${failures.length === 1 ? 'an image' : `${failures.length} images`} to a digest:\n${failures.map((f) => `- service ${f.service}${f.at && f.at !== at ? ` (${f.at.file}${f.at.line !== undefined ? `:${f.at.line}` : ''})` : ''}: ${f.error}`).join('\n')}`, {
      ...(at ? { file: at.file, ...(at.line !== undefined ? { line: at.line } : {}), ...(at.path ? { path: at.path } : {}) } : {}),
      hint: 'the plan pins every image to the digest its registry serves now (or, under pull_policy never/daily/weekly/every_<d>, to the image the target holds); an image that cannot be found there cannot be planned',
    });
  }
}

function pinServices(desired: DesiredState, resolutionOf: (s: DesiredService) => Resolution | undefined): DesiredState {
  const failures: { service: string; image: string; error: string; at?: DeclaredAt }[] = [];
  const services = desired.services.map((s) => {
    const r = resolutionOf(s);
    if (!r || 'local' in r) return s;
    if ('error' in r) {
      const at = r.at === 'pullPolicy' ? (s.at?.pullPolicy ?? s.at?.image) : s.at?.image;
      failures.push({ service: s.spec.name, image: s.spec.image, error: r.error, ...(at ? { at } : {}) });
      return s;
    }
    return { ...desiredService({ ...s.spec, image: pinnedRef(s.spec.image, r.digest) }), ...(s.at ? { at: s.at } : {}) };
  });
  if (failures.length) throw new ImageResolutionError(failures);
  return { ...desired, services };
}

/** Pure: the desired state with every resolved image pinned; a failed one is a plan error. */
export function pinDesired(desired: DesiredState, resolved: ReadonlyMap<string, Resolution>): DesiredState {
  return pinServices(desired, (s) => resolved.get(s.spec.image));
}

/**
 * Pins through the environment's targets as the app and the CLI both do: the
 * first target's engine and registry login resolve, the others are checked.
 * BERTH_PIN_IMAGES=off (server setting) deploys the references as written.
 */
export async function pinThroughTargets(
  targets: { docker(name: string): Dockerode; credentials(name: string): RegistryCredentials },
  desired: DesiredState,
  names: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  gate?: RegistryGate,
): Promise<DesiredState> {
  const [first, ...rest] = names;
  const pinning = first !== undefined && env.BERTH_PIN_IMAGES !== 'off';
  // Before any engine call, and with pinning off too (the apply would pull from there) — but then by the
  // names' form only: no engine is asked at plan time, so there is no lookup to make either.
  if (gate) await checkRegistries(desired, pinning ? gate : { policy: gate.policy });
  if (!pinning) return desired;
  return pinImages({ name: first, docker: targets.docker(first) }, desired, { credentials: targets.credentials(first), others: rest.map((name) => ({ name, docker: targets.docker(name) })) });
}

/**
 * What each tag resolves to now, through a target's engine and login (drift's
 * moved-tag check). Answers are kept `ttlMs` per target and tag, so a drift
 * loop does not query the registry every tick; an unresolvable tag is undefined.
 */
export function tagResolver(
  targets: { docker(name: string): Dockerode; credentials(name: string): RegistryCredentials },
  ttlMs = 0,
  now: () => number = Date.now,
): (target: string, tags: readonly string[]) => Promise<Map<string, string | undefined>> {
  const cache = new Map<string, { at: number; digest: string | undefined }>();
  return async (target, tags) => {
    const key = (t: string) => `${target}\u0000${t}`;
    const stale = tags.filter((t) => {
      const c = cache.get(key(t));
      return !c || now() - c.at >= ttlMs;
    });
    if (stale.length) {
      const got = await resolveImages(targets.docker(target), stale, targets.credentials(target));
      for (const t of stale) {
        const r = got.get(t);
        cache.set(key(t), { at: now(), digest: r && 'digest' in r ? r.digest : undefined });
      }
    }
    return new Map(tags.map((t) => [t, cache.get(key(t))?.digest]));
  };
}
