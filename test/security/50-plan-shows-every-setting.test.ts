// Red-team round 11, H2: the plan shows every setting a change makes. `/apply`
// applies what the person who commented saw, and the plan is what they saw: a
// change of a setting outside the dozen the diff knew (security_opt, sysctls,
// dns, extra_hosts, volumes_from, userns_mode, ipc, logging, tmpfs, device
// requests, …) read only "config changed", with an empty diff. A writer could
// turn seccomp and AppArmor off where the policy allows security options, join
// an allowed container's volumes, or point the service's DNS or a payment
// API's host name at an address of theirs, and the applier saw nothing of it.
import { describe, expect, it } from 'vitest';
import { loadCompose } from '../../src/compose/load.js';
import { DENY_ALL, type Policy } from '../../src/compose/policy.js';
import { reconcile } from '../../src/plan/reconcile.js';
import { renderPlanMarkdown, renderPlanText } from '../../src/plan/render.js';
import { emptyObserved, simulate } from '../helpers/simulate.js';

const policy: Policy = { ...DENY_ALL, allow_security_opt: true, allow_host_sysctls: true, allow_host_userns: true, allow_container_namespaces: ['shared-data'] };
const load = (service: string, variables: Record<string, string> = {}) =>
  loadCompose([{ path: 'compose.yml', text: `services:\n  web:\n    image: nginx:1\n${service}` }], { project: 'p', environment: 'e', variables, policy });

describe('a change shows what it changes', () => {
  it('every setting the new file adds is a diff line, in Markdown and in the CLI', () => {
    const before = load('');
    const observed = simulate(reconcile(before, emptyObserved('p', 'e')), emptyObserved('p', 'e'));
    const after = load(
      [
        '    security_opt: [seccomp=unconfined, apparmor=unconfined]',
        '    sysctls: {kernel.domainname: evil}',
        '    dns: [203.0.113.9]',
        '    extra_hosts: ["api.stripe.com:203.0.113.9"]',
        '    volumes_from: ["container:shared-data"]',
        '    userns_mode: host',
        '    logging: {driver: local, options: {max-size: 1m}}',
        '    tmpfs: [/run:exec]',
        '',
      ].join('\n'),
    );
    const plan = reconcile(after, observed);
    const md = renderPlanMarkdown(plan, { environment: 'e', target: 'local' });
    const text = renderPlanText(plan);
    for (const line of [
      '+ security_opt: apparmor=unconfined',
      '+ security_opt: seccomp=unconfined',
      '+ sysctls.kernel.domainname: evil',
      '+ dns: 203.0.113.9',
      '+ extra_hosts: api.stripe.com:203.0.113.9',
      '+ volumes_from: container:shared-data:rw',
      '+ userns_mode: host',
      '+ logging.driver: local',
      '+ logging.options.max-size: 1m',
      '+ tmpfs./run: exec',
    ]) {
      expect(md).toContain(line);
      expect(text).toContain(line);
    }
  });

  it('a setting a secret fed is still a mask, its key too', () => {
    const plan = reconcile(load('    tmpfs: ["/t${DB_PASSWORD}:size=1m"]\n    dns: ["${DB_PASSWORD}"]\n', { DB_PASSWORD: '10.9.8.7' }), emptyObserved('p', 'e'));
    const md = renderPlanMarkdown(plan, { environment: 'e', target: 'local', secretValues: ['10.9.8.7'] });
    expect(md).toContain('+ tmpfs.••••••: ••••••');
    expect(md).toContain('+ dns: ••••••');
    expect(md).not.toContain('10.9.8.7');
  });
});
