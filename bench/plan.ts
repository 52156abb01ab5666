// plan_2000_services_ms: reconcile() of 2,000 services against 2,000 observed
// containers where 10% of the services changed (new image → recreate).
import type { DesiredState, ObservedState } from '../src/model/model.js';
import { planToString } from '../src/plan/plan.js';
import { reconcile } from '../src/plan/reconcile.js';
import { renderPlanMarkdown } from '../src/plan/render.js';
import { emptyObserved, simulate } from '../test/helpers/simulate.js';
import { net, spec, state } from '../test/helpers/specs.js';
import type { Figure } from './lib.js';
import { figure, time } from './lib.js';

const SERVICES = 2000;
const CHANGED_EVERY = 10; // 10% changed
const RUNS = 30;
const WARMUP = 5;
export const PLAN_TARGET_MS = 100;

function desired(changed: boolean): DesiredState {
  return state(
    Array.from({ length: SERVICES }, (_, i) =>
      spec(`svc${String(i).padStart(4, '0')}`, {
        image: changed && i % CHANGED_EVERY === 0 ? 'docker.io/berth-test/app:2' : 'docker.io/berth-test/app:1',
        environment: { INDEX: String(i), DB_PASSWORD: `pw-${i}` },
        ports: [{ target: 80, protocol: 'tcp' }],
        networks: i % 2 ? ['back', 'default'] : ['default'],
        // a realistic dependency fan-in: every service depends on one of the first 20
        dependsOn: i >= 20 ? [{ service: `svc${String(i % 20).padStart(4, '0')}`, condition: 'service_started' }] : [],
      }),
    ),
    [net('back'), net('default')],
    [],
    'bench',
    'production',
  );
}

export function planInputs(): { after: DesiredState; host: ObservedState } {
  const before = desired(false);
  const empty = emptyObserved('bench', 'production');
  const host = simulate(reconcile(before, empty), empty);
  // Shuffle-free but realistic: containers as Docker would list them (newest first).
  host.containers.reverse();
  return { after: desired(true), host };
}

export async function bench(log: (line: string) => void): Promise<Figure[]> {
  const { after, host } = planInputs();
  if (host.containers.length !== SERVICES) throw new Error(`expected ${SERVICES} observed containers, got ${host.containers.length}`);
  const plan = reconcile(after, host);
  const changed = plan.changes.filter((c) => c.action === 'change').length;
  log(`plan: ${SERVICES} services, ${host.containers.length} observed containers, ${changed} changed → ${plan.nodes.length} nodes`);
  const samples = await time(() => reconcile(after, host), RUNS, WARMUP);
  // CPU time of the same runs beside the wall time: on a shared 2-core machine the wall median also counts waiting for a core.
  const cpu: number[] = [];
  const render = await time(() => {
    const c = process.cpuUsage();
    renderPlanMarkdown(reconcile(after, host), { environment: 'production' });
    const d = process.cpuUsage(c);
    cpu.push((d.user + d.system) / 1000);
  }, 10, 2);
  cpu.splice(0, 2);
  cpu.sort((a, b) => a - b);
  const text = await time(() => planToString(plan), 10, 2);
  return [
    figure('plan_2000_services_ms', samples, PLAN_TARGET_MS, { services: SERVICES, observed_containers: host.containers.length, changed_services: changed, nodes: plan.nodes.length }),
    figure('plan_and_render_markdown_2000_services_ms', render, PLAN_TARGET_MS, { markdown_chars: renderPlanMarkdown(plan, { environment: 'production' }).length, cpu_median_ms: +cpu[Math.floor(cpu.length / 2)]!.toFixed(1) }),
    figure('plan_to_string_2000_services_ms', text, null),
  ];
}
