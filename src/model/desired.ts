// Hashes that decide "changed or not". Scaling never changes a service's hash:
// replicas are excluded so 1→3 adds containers instead of recreating them, and so
// is the rollout (update_config): how a change rolls out is not a change.
import { hashOf } from './hash.js';
import type { DesiredNetwork, DesiredService, DesiredVolume, NetworkSpec, ServiceSpec, VolumeSpec } from './model.js';

export function serviceConfigHash(spec: ServiceSpec): string {
  // pull_policy says when to fetch the image, not what runs, and update_config how a change rolls out:
  // like compose, changing either recreates nothing.
  const { replicas: _replicas, rollout: _rollout, pullPolicy: _pullPolicy, ...rest } = spec;
  return hashOf(rest);
}

export const desiredService = (spec: ServiceSpec): DesiredService => ({ spec, configHash: serviceConfigHash(spec) });
export const desiredNetwork = (spec: NetworkSpec): DesiredNetwork => ({ spec, configHash: hashOf(spec) });
export const desiredVolume = (spec: VolumeSpec): DesiredVolume => ({ spec, configHash: hashOf(spec) });
