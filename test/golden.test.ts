// Golden plans: each fixtures/plans/*.yml holds a compose file the host was
// deployed with (`before`, absent = empty host), optional hand-made changes to
// the host (`host`), the compose file wanted now (`after`) and the expected
// canonical plan text (`plan`). UPDATE_GOLDEN=1 rewrites `plan` (it must be
// the file's last key) and leaves the rest of the file as it is.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadCompose } from '../src/compose/load.js';
import type { ObservedState } from '../src/model/model.js';
import { names } from '../src/model/model.js';
import { isEmpty, planToString } from '../src/plan/plan.js';
import { reconcile } from '../src/plan/reconcile.js';
import { emptyObserved, simulate } from './helpers/simulate.js';

const DIR = resolve(import.meta.dirname, '../fixtures/plans');
const PROJECT = 'shop';
const ENV = 'staging';
const UPDATE = process.env.UPDATE_GOLDEN === '1';

type HostChange =
  | { stop: string }
  | { pause: string }
  | { exit: { container: string; code: number } }
  | { remove: string }
  | { kill: string }
  | { disconnect: { container: string; network: string } }
  | { remove_network: string }
  | { add_orphan: { service: string; replica: number; state?: 'running' | 'exited'; networks?: string[] } };

interface Golden {
  description?: string;
  variables?: Record<string, string>;
  before?: string;
  host?: HostChange[];
  after: string;
  plan?: string;
}

const desired = (text: string, g: Golden) => loadCompose([{ path: 'compose.yml', text }], { project: PROJECT, environment: ENV, variables: g.variables ?? {} });

/** `web-1` → the container of service web, replica 1 */
function container(o: ObservedState, ref: string) {
  const m = /^(.+)-(\d+)$/.exec(ref);
  if (!m) throw new Error(`golden: container reference "${ref}" is not SERVICE-REPLICA`);
  const name = names.container(PROJECT, ENV, m[1]!, Number(m[2]));
  const c = o.containers.find((x) => x.name === name);
  if (!c) throw new Error(`golden: no container ${name} on the host`);
  return c;
}

function mutate(o: ObservedState, changes: HostChange[]): ObservedState {
  const out = structuredClone(o);
  for (const ch of changes) {
    if ('stop' in ch) container(out, ch.stop).state = 'exited';
    else if ('pause' in ch) container(out, ch.pause).state = 'paused';
    else if ('exit' in ch) Object.assign(container(out, ch.exit.container), { state: 'exited', exitCode: ch.exit.code });
    else if ('kill' in ch) container(out, ch.kill).state = 'dead';
    else if ('remove' in ch) {
      const c = container(out, ch.remove);
      out.containers = out.containers.filter((x) => x !== c);
    } else if ('disconnect' in ch) {
      const c = container(out, ch.disconnect.container);
      c.networks = c.networks.filter((n) => n !== ch.disconnect.network);
    } else if ('remove_network' in ch) out.networks = out.networks.filter((n) => n.name !== ch.remove_network);
    else if ('add_orphan' in ch) {
      const { service, replica, state = 'running', networks = ['default'] } = ch.add_orphan;
      out.containers.push({
        id: `orphan-${service}-${replica}`,
        name: names.container(PROJECT, ENV, service, replica),
        service,
        replica,
        configHash: `orphan-${service}`,
        image: 'docker.io/berth-test/app:1',
        state,
        networks,
      });
    } else throw new Error(`golden: unknown host change ${JSON.stringify(ch)}`);
  }
  return out;
}

function rewritePlan(file: string, text: string, plan: string): void {
  const block = plan ? `plan: |\n${plan.replace(/^(?=.)/gm, '  ')}` : 'plan: ""\n';
  const m = /^plan:/m.exec(text);
  const out = m ? text.slice(0, m.index) + block : `${text.replace(/\n*$/, '\n')}${block}`;
  writeFileSync(file, out);
}

const files = readdirSync(DIR)
  .filter((f) => f.endsWith('.yml'))
  .sort();

describe('golden plans', () => {
  it('there are golden files', () => {
    expect(files.length).toBeGreaterThan(10);
  });

  for (const f of files) {
    it(f.replace(/\.yml$/, ''), () => {
      const path = join(DIR, f);
      const text = readFileSync(path, 'utf8');
      const g = parse(text) as Golden;
      let observed = emptyObserved(PROJECT, ENV);
      if (g.before) observed = simulate(reconcile(desired(g.before, g), observed), observed, 'old');
      if (g.host) observed = mutate(observed, g.host);
      const want = desired(g.after, g);
      const plan = reconcile(want, observed);
      const got = planToString(plan);

      if (UPDATE) rewritePlan(path, text, got);
      else expect(got).toBe(g.plan ?? '');

      // Whatever the plan, applying it converges: planning again finds nothing to do.
      const after = simulate(plan, observed, 'new');
      expect(planToString(reconcile(want, after))).toBe('');
      expect(isEmpty(reconcile(want, after))).toBe(true);
    });
  }
});
