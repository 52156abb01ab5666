// A server-side secret is a placeholder while berth plans (planning never decrypts), and its value exists only
// in the apply's Docker calls. So the policy and the plan judge the placeholder: a bind of `/srv/${S}` passed an
// allowlist of /srv whatever S held, and the apply mounted /srv/<value>, `../..` included (red team of
// 2026-12-05, evening, as a hardening idea; confirmed here). A server-side secret goes only where the README
// says the apply puts it: environment values, command, entrypoint, the healthcheck's test, labels (which keep
// the placeholder) and files under secrets:. Anywhere else it is refused at plan time.
import { describe, expect, it } from 'vitest';
import { loadCompose } from '../../src/compose/load.js';
import { DENY_ALL } from '../../src/compose/policy.js';
import { placeholder } from '../../src/secrets/placeholder.js';
import { errorOf } from '../helpers/errors.js';

const S = placeholder('S', '0123456789abcdef'.repeat(4));
const POLICY = { ...DENY_ALL, bind_mount_allowlist: ['/srv'], allow_devices: true };
const load = (service: string, extra = '') =>
  loadCompose([{ path: 'compose.yml', text: `services:\n  web:\n    image: berth-test/app:1\n${service.split('\n').map((l) => `    ${l}`).join('\n')}\n${extra}` }], {
    project: 'p',
    environment: 'e',
    variables: { S },
    secretKeys: ['S'],
    policy: POLICY,
  });

describe('a server-side secret goes only where the apply reveals it', () => {
  it.each([
    ['a bind source', 'volumes: ["/srv/${S}:/data"]', 'volumes'],
    ['a long-form bind source', 'volumes: [{type: bind, source: "/srv/${S}", target: /data}]', 'volumes'],
    ['a device', 'devices: ["/dev/${S}"]', 'devices'],
    ['the user', 'user: "${S}"', 'user'],
    ['the working directory', 'working_dir: "/srv/${S}"', 'workingDir'],
    ['the container name', 'container_name: "web-${S}"', 'containerName'],
  ])('%s is refused at plan time', (_what, line, field) => {
    const e = errorOf(() => load(line));
    expect(e).toMatchObject({ code: 'secret_placement', path: 'services.web' });
    expect(e.problem).toBe(`service web: the server-side secret S is used in ${field}, where berth could check only its placeholder, not what the apply would run`);
  });

  it("a bind through a volume's driver options is refused by the policy whatever its path", () => {
    const volume = (opts: string) => load('volumes: [data:/data]', `volumes:\n  data:\n    driver_opts: {${opts}}\n`);
    expect(errorOf(() => volume('type: none, o: bind, device: "/srv/${S}"'))).toMatchObject({ code: 'policy_denied', path: 'volumes.data.driver_opts' });
  });

  it('environment, command, entrypoint, healthcheck test and labels take it (files under secrets: too: test/secrets.test.ts)', () => {
    const d = load(
      'environment: {DB: "${S}"}\ncommand: [serve, "--token=${S}"]\nentrypoint: [run, "${S}"]\nhealthcheck: {test: [CMD, check, "${S}"]}\nlabels: {token: "${S}"}',
    );
    const spec = d.services[0]!.spec;
    expect(spec.environment.DB).toBe(S);
    expect(spec.command).toEqual(['serve', `--token=${S}`]);
    expect(spec.healthcheck?.test).toEqual(['CMD', 'check', S]);
  });
});
