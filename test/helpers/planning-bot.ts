// A Bot that plans one environment as the app does (reads through `files`, images pinned through `docker`),
// on an empty host: what the security tests of planning drive (43, 44).
import type Dockerode from 'dockerode';
import type { RegistryLookup } from '../../src/compose/registries.js';
import type { BerthConfig } from '../../src/config/config.js';
import { pinThroughTargets } from '../../src/docker/resolve.js';
import { Bot, type BotOptions, type EnvPlan } from '../../src/github/bot.js';
import type { GitHubPort } from '../../src/github/github.js';
import type { DesiredState } from '../../src/model/model.js';
import { emptyObserved } from './simulate.js';

export function planFirstEnvironment(config: BerthConfig, files: Record<string, string>, docker: Dockerode, lookup?: RegistryLookup): Promise<EnvPlan> {
  const gh = { readFile: async (_r: unknown, path: string) => files[path] } as unknown as GitHubPort;
  const bot = new Bot({
    targets: { has: () => true, names: () => ['local'] },
    store: { projectOwner: async () => undefined },
    observe: async (_t: string, project: string, environment: string) => emptyObserved(project, environment),
    log: { error: () => {}, info: () => {}, warn: () => {} },
    resolveImages: (d: DesiredState, names: readonly string[], p: unknown) => pinThroughTargets({ docker: () => docker, credentials: () => undefined } as never, d, names, {}, { policy: p as never, ...(lookup ? { lookup } : {}) }),
  } as unknown as BotOptions);
  return bot.planEnvironment(gh, { owner: 'eve', name: 'shop' }, { config, files: new Set(Object.keys(files)) }, config.environments[0]!, 'head1');
}
