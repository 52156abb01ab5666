// Settings only newer engines honour. An older engine takes the create and
// drops what it does not know without a word, so berth asks the engine which
// API it speaks first and refuses, naming the setting, before creating
// anything (as docker compose refuses healthcheck.start_interval below 1.44).
import type { Engine } from '../apply/engine.js';

/** Whether API version `have` (`1.41`) is `min` or later. */
export function apiAtLeast(have: string, min: string): boolean {
  const [a = 0, b = 0] = have.split('.').map(Number);
  const [c = 0, d = 0] = min.split('.').map(Number);
  return a > c || (a === c && b >= d);
}

/** A setting only newer engines honour: the API and engine it needs, and what an older engine does with it (default: ignores it). */
export interface NewerApiSetting {
  what: string;
  api: string;
  engine: string;
  older?: string;
}

/** The settings of a service spec that need a newer API than 1.41, with the version each needs. */
export function newerApiSettings(spec: {
  healthcheck?: { startIntervalMs?: number };
  volumes?: readonly { subpath?: string; target: string }[];
  networks?: readonly string[];
  networkOptions?: Readonly<Record<string, { macAddress?: string }>>;
  securityOpt?: readonly string[];
}): NewerApiSetting[] {
  // Checked before every create: nothing is allocated for a service that uses none of them (the usual case).
  const needs: NewerApiSetting[] = [];
  const networks = spec.networks ?? [];
  // The network the container is created on takes its MAC with the create on any engine; one joined afterwards only from 1.44.
  for (let i = 1; i < networks.length; i++) if (spec.networkOptions?.[networks[i]!]?.macAddress) needs.push({ what: `networks.${networks[i]}.mac_address (a network the container joins after it is created)`, api: '1.44', engine: 'Docker Engine 25' });
  if (spec.healthcheck?.startIntervalMs) needs.push({ what: 'healthcheck.start_interval', api: '1.44', engine: 'Docker Engine 25' });
  for (const v of spec.volumes ?? []) if (v.subpath) needs.push({ what: `volume.subpath of the mount at ${v.target}`, api: '1.45', engine: 'Docker Engine 26' });
  // The engine's own default profile by name (Docker 23 renamed "default" to "builtin"): Docker Engine 20.10 takes the
  // create and fails the start, reading "builtin" as a profile's JSON.
  for (const o of spec.securityOpt ?? [])
    if (/^seccomp[:=]builtin$/.test(o)) needs.push({ what: `security_opt ${o}`, api: '1.42', engine: 'Docker Engine 23', older: 'would fail to start the container (it reads builtin as a profile\'s JSON)' });
  return needs;
}

/** Refuses (throws) when the engine is too old for a setting the service uses. */
export async function requireApiFor(engine: Engine, service: string, spec: Parameters<typeof newerApiSettings>[0]): Promise<void> {
  const needs = newerApiSettings(spec);
  if (!needs.length) return;
  const have = await engine.apiVersion();
  for (const n of needs)
    if (!apiAtLeast(have, n.api))
      throw new Error(`service ${service}: ${n.what} needs ${n.engine} or later (API ${n.api}); this target's engine speaks API ${have} and ${n.older ?? 'would ignore it'} — remove ${n.what}, or deploy to a newer engine (the container was not created)`);
}
