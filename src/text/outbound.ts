// The one path by which text leaves berth. Renderers mask what they know is
// secret (fields a secret variable fed, secret keys); everything berth sends to
// GitHub, writes to its log or prints from the CLI then passes through `OUT`,
// a masker that has learnt every secret value (and every shown form of a
// secret-derived field) berth has read in this process: from configs, from
// loaded compose files, from stored apply payloads. The channels are wrapped
// where they are created (index.ts, cli.ts), so no caller can forget it, and
// a value rotated since (the old secret in a stored plan) is still known.
import type { SecretFields } from '../compose/taint.js';
import type { EnvironmentConfig } from '../config/config.js';
import type { CheckRunInput, CheckRunUpdate, DeploymentInput, DeploymentStatusInput, GitHubPort } from '../github/github.js';
import { parsePayload } from '../apply/executor.js';
import { Masker, secretContents, secretVariableValues } from '../plan/mask.js';
import type { DesiredState } from '../model/model.js';
import { maskerForSpecs } from '../plan/render.js';

/** Every secret this process has seen. Learning only ever adds: masking more is the safe side. */
export const OUT = new Masker();

/** Text as it may leave berth. */
export const outText = (s: string): string => OUT.text(s);

/** The secret variable values of an environment (by name or `secret_keys`). */
export function learnEnvironment(env: Pick<EnvironmentConfig, 'variables' | 'secret_keys'> & { secrets?: readonly string[] }): void {
  OUT.absorb(new Masker([...(env.secret_keys ?? []), ...(env.secrets ?? [])], secretVariableValues(env.variables ?? {}, env.secret_keys ?? [])));
}

/** A desired state's secret values, including the shown forms of the fields a secret variable fed. */
export function learnDesired(desired: Pick<DesiredState, 'services' | 'secretFields' | 'contents'>, secretKeys?: readonly string[], secretValues?: readonly string[]): void {
  OUT.absorb(maskerForSpecs(desired.services.map((s) => s.spec), desired.secretFields as SecretFields | undefined, secretKeys, [...(secretValues ?? []), ...secretContents(desired)]));
}

/** What a stored apply knows is secret (it may be read long after the config that named it changed). */
export function learnApply(apply: { desiredJson: string }): void {
  try {
    const p = parsePayload(apply.desiredJson);
    learnDesired(p.desired, p.secretKeys, p.secretValues);
  } catch {
    // an unreadable payload has nothing to learn from; its reader reports it
  }
}

/** Every string in a log object masked (deeply), the message too. */
function maskDeep(v: unknown, depth = 0): unknown {
  if (typeof v === 'string') return outText(v);
  if (depth > 6 || v === null || typeof v !== 'object') return v;
  if (v instanceof Error) return outText(String(v.stack ?? v.message));
  if (Array.isArray(v)) return v.map((x) => maskDeep(x, depth + 1));
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, maskDeep(x, depth + 1)]));
}

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug?(obj: object, msg?: string): void;
}

/** A logger whose every line is masked. */
export function maskedLogger<L extends Logger>(log: L): Logger & { debug(obj: object, msg?: string): void } {
  const wrap =
    (level: 'info' | 'warn' | 'error' | 'debug') =>
    (obj: object, msg?: string): void => {
      const fn = log[level]?.bind(log) as ((o: object, m?: string) => void) | undefined;
      if (!fn) return;
      if (msg === undefined) fn(maskDeep(obj) as object);
      else fn(maskDeep(obj) as object, outText(msg));
    };
  return { info: wrap('info'), warn: wrap('warn'), error: wrap('error'), debug: wrap('debug') };
}

const maskCheck = <T extends CheckRunUpdate | CheckRunInput>(c: T): T => ({
  ...c,
  title: outText(c.title),
  summary: outText(c.summary),
  ...(c.text !== undefined ? { text: outText(c.text) } : {}),
});

/** A GitHub port whose comments and check runs are masked. */
export function maskedGitHub(gh: GitHubPort): GitHubPort {
  return new Proxy(gh, {
    get(target, prop, receiver) {
      switch (prop) {
        case 'createComment':
          return (repo: Parameters<GitHubPort['createComment']>[0], pr: number, body: string) => target.createComment(repo, pr, outText(body));
        case 'updateComment':
          return (repo: Parameters<GitHubPort['updateComment']>[0], id: number, body: string) => target.updateComment(repo, id, outText(body));
        case 'createCheckRun':
          return (repo: Parameters<GitHubPort['createCheckRun']>[0], input: CheckRunInput) => target.createCheckRun(repo, maskCheck(input));
        case 'updateCheckRun':
          return (repo: Parameters<GitHubPort['updateCheckRun']>[0], id: number, update: CheckRunUpdate) => target.updateCheckRun(repo, id, maskCheck(update));
        case 'createDeployment':
          return (repo: Parameters<GitHubPort['createDeployment']>[0], input: DeploymentInput) =>
            target.createDeployment(repo, {
              ...input,
              description: outText(input.description),
              payload: Object.fromEntries(Object.entries(input.payload).map(([k, v]) => [k, typeof v === 'string' ? outText(v) : v])),
            });
        case 'createDeploymentStatus':
          return (repo: Parameters<GitHubPort['createDeploymentStatus']>[0], id: number, status: DeploymentStatusInput) =>
            target.createDeploymentStatus(repo, id, {
              ...status,
              ...(status.description !== undefined ? { description: outText(status.description) } : {}),
              ...(status.environmentUrl !== undefined ? { environmentUrl: outText(status.environmentUrl) } : {}),
            });
        default: {
          const v = Reflect.get(target, prop, receiver) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        }
      }
    },
  });
}
