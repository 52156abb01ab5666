// Compose configs and secrets on the real engine, loaded the way the app
// loads a PR (berth.yml, compose files and a config's file through one
// FileReader): the files exist in the running container with their content,
// owner and mode; rotating a secret recreates exactly the services that use
// it; no secret value (nor its digest) appears in the plan text or Markdown;
// a secret read from the repository is refused at its line.
import { expect, it } from 'vitest';
import { planTargets } from '../src/apply/prepare-apply.js';
import { sha256 } from '../src/model/hash.js';
import { planToString } from '../src/plan/plan.js';
import { renderPlanMarkdown, renderPlanText } from '../src/plan/render.js';
import type { FileReader } from '../src/config/load-environment.js';
import { loadEnvironment } from '../src/config/load-environment.js';
import { docker } from './helpers/docker.js';
import { describeDocker } from './helpers/env.js';
import { realApplyHarness, realObserver as observer } from './helpers/real-apply.js';

const PROJECT = `t-secfiles-${process.pid}`;
const cname = (service: string) => `${PROJECT}-staging-${service}-1`;

const COMPOSE = `services:
  app:
    image: berth-test/app:1
    configs:
      - source: nginx
        target: /etc/app/nginx.conf
        mode: 0440
      - motd
    secrets:
      - db_password
      - source: api_token
        target: token
        uid: "1000"
        gid: "1000"
        mode: 0400
  other:
    image: berth-test/app:1
    configs: [motd]
configs:
  nginx:
    file: ./nginx.conf
  motd:
    content: "hello \${GREETING}"
secrets:
  db_password:
    environment: DB_PASSWORD
  api_token:
    environment: API_TOKEN
`;

function repo(password: string, compose = COMPOSE): FileReader {
  const files: Record<string, string> = {
    '.github/berth.yml': `project: ${PROJECT}
environments:
  - name: staging
    compose: [deploy/compose.yml]
    variables:
      GREETING: world
      DB_PASSWORD: ${password}
      API_TOKEN: tok-abcdef-123456
`,
    'deploy/compose.yml': compose,
    'deploy/nginx.conf': 'server { listen 80; }\n',
  };
  return async (path) => files[path];
}

/** stdout of a command run in a container */
async function exec(container: string, cmd: string): Promise<string> {
  const e = await docker.getContainer(container).exec({ Cmd: ['sh', '-c', cmd], AttachStdout: true, AttachStderr: true });
  const stream = await e.start({ hijack: true, stdin: false });
  const out: Buffer[] = [];
  const sink = { write: (b: Buffer) => out.push(b) };
  docker.modem.demuxStream(stream, sink as unknown as NodeJS.WritableStream, sink as unknown as NodeJS.WritableStream);
  await new Promise((r) => stream.on('end', r));
  return Buffer.concat(out).toString();
}

describeDocker('configs and secrets on the real Docker engine', () => {
  const { apply } = realApplyHarness(PROJECT);

  it('mounts configs and secrets as compose does; a rotation recreates only their users and never shows the value', async () => {
    const first = await loadEnvironment(repo('s3cr3t-value-one'), 'staging');
    expect((await apply(first.desired)).result).toBe('completed');
    expect(await exec(cname('app'), 'cat /etc/app/nginx.conf; stat -c "%a %u %g" /etc/app/nginx.conf')).toBe('server { listen 80; }\n440 0 0\n');
    expect(await exec(cname('app'), 'cat /motd; echo; stat -c "%a" /motd')).toBe('hello world\n444\n');
    expect(await exec(cname('app'), 'cat /run/secrets/db_password; echo; stat -c "%a" /run/secrets/db_password')).toBe('s3cr3t-value-one\n444\n');
    expect(await exec(cname('app'), 'cat /run/secrets/token; echo; stat -c "%a %u %g" /run/secrets/token')).toBe('tok-abcdef-123456\n400 1000 1000\n');
    expect(await exec(cname('other'), 'cat /motd')).toBe('hello world');
    const [again] = await planTargets(first.desired, ['local'], observer);
    expect(again!.plan.nodes).toEqual([]);

    const appBefore = (await docker.getContainer(cname('app')).inspect()).Id;
    const otherBefore = (await docker.getContainer(cname('other')).inspect()).Id;
    const rotated = await loadEnvironment(repo('s3cr3t-value-two'), 'staging');
    const [p] = await planTargets(rotated.desired, ['local'], observer);
    const text = planToString(p!.plan);
    expect(text).toContain('service:app:1, CreateContainer, secret db_password changed');
    expect(text).not.toContain('service:other');
    const shown = [text, renderPlanText(p!.plan), renderPlanMarkdown(p!.plan, { environment: 'staging' })].join('\n');
    expect(shown).toContain('secret db_password changed');
    for (const secret of ['s3cr3t-value-one', 's3cr3t-value-two', 'tok-abcdef-123456', sha256('s3cr3t-value-one'), sha256('s3cr3t-value-two'), sha256('tok-abcdef-123456')])
      expect(shown).not.toContain(secret);

    expect((await apply(rotated.desired)).result).toBe('completed');
    expect((await docker.getContainer(cname('app')).inspect()).Id).not.toBe(appBefore);
    expect((await docker.getContainer(cname('other')).inspect()).Id).toBe(otherBefore);
    expect(await exec(cname('app'), 'cat /run/secrets/db_password')).toBe('s3cr3t-value-two');
  }, 90_000);

  it('a secret read from a file of the repository is refused at its line', async () => {
    const compose = `services:
  app:
    image: berth-test/app:1
    secrets: [key]
secrets:
  key:
    file: ./key.pem
`;
    const err = await loadEnvironment(repo('x', compose), 'staging').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'secret_in_repository', file: 'deploy/compose.yml', line: 7 });
    expect(String(err)).toContain('secrets never live in the repository');
  });
});
