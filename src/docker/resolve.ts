// Tag → digest pinning, gathered before planning like observed state: each
// image reference is resolved once per plan, in parallel, through the
// engine's distribution endpoint (GET /distribution/{name}/json) with the
// target's server-side registry login, so it works on remote engines too.
// The plan then carries `repo:tag@sha256:…`, which is what the apply creates.
import type Dockerode from 'dockerode';
import { BerthError } from '../errors.js';
import { desiredService } from '../desired.js';
import type { DesiredState } from '../model.js';
import type { RegistryCredentials } from './registry-auth.js';
import { normalizeImageRef } from './observe.js';
import { registryOf } from './registry-auth.js';

export type Resolution = { digest: string } | { local: true } | { error: string };

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

/**
 * Resolves every distinct image. An image the registry does not know but the
 * engine holds with no registry digest was built on that host (`docker
 * build`/`docker import`): it runs as it is. An image that came from a
 * registry, or is absent, must resolve — otherwise the plan fails naming the
 * registry, the image and the setting (never halfway through an apply).
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
        const local = await docker
          .getImage(image)
          .inspect()
          .catch(() => undefined);
        // Built here: no registry digest for this image's own repository (a digest
        // from pushing the same content elsewhere does not make it a registry image).
        const repo = repositoryOf(image);
        if (local && !(local.RepoDigests ?? []).some((d) => repositoryOf(d) === repo)) return void out.set(image, { local: true });
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

export class ImageResolutionError extends BerthError {
  constructor(failures: { service: string; image: string; error: string }[]) {
    super('image_unresolved', `cannot resolve ${failures.length === 1 ? 'an image' : `${failures.length} images`} to a digest:\n${failures.map((f) => `- service ${f.service}: ${f.error}`).join('\n')}`, {
      hint: 'the plan pins every image to the digest its registry serves now; an image the registry refuses or does not have cannot be planned',
    });
  }
}

/** Pure: the desired state with every resolved image pinned; a failed one is a plan error. */
export function pinDesired(desired: DesiredState, resolved: ReadonlyMap<string, Resolution>): DesiredState {
  const failures: { service: string; image: string; error: string }[] = [];
  const services = desired.services.map((s) => {
    const r = resolved.get(s.spec.image);
    if (!r || 'local' in r) return s;
    if ('error' in r) {
      failures.push({ service: s.spec.name, image: s.spec.image, error: r.error });
      return s;
    }
    return desiredService({ ...s.spec, image: pinnedRef(s.spec.image, r.digest) });
  });
  if (failures.length) throw new ImageResolutionError(failures);
  return { ...desired, services };
}
