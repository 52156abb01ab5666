// The stack the crash-recovery test applies: long enough (healthchecks in a
// chain, limited parallelism) that a kill lands in the middle.
import type { DesiredState, ServiceSpec } from '../../src/model/model.js';
import { spec, state } from './specs.js';

export function crashStack(project: string, environment: string): DesiredState {
  // Generous timeout and retries: on a loaded 2-core engine a docker exec can take over a second.
  const health = { test: ['CMD-SHELL', 'test -f /VERSION'], intervalMs: 300, timeoutMs: 5000, retries: 10, startPeriodMs: 0 };
  const services: ServiceSpec[] = [];
  for (let i = 0; i < 8; i++) {
    const s = spec(`s${i}`, {
      healthcheck: health,
      dependsOn: i >= 2 ? [{ service: `s${i - 2}`, condition: 'service_healthy' }] : [],
    });
    delete s.command;
    services.push(s);
  }
  return state(services, undefined, [], project, environment);
}
