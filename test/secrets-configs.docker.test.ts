// Compose configs and secrets on the real engine, loaded the way the app
// loads a PR (berth.yml, compose files and a config's file through one
// FileReader): the files exist in the running container with their content,
// owner and mode; rotating a secret recreates exactly the services that use
// it; no secret value (nor its digest) appears in the plan text or Markdown;
// a secret read from the repository is refused at its line.
import { createHash } from 'node:crypto';
import { expect, it } from 'vitest';
import { planTargets } from '../src/apply/prepare-apply.js';
import { sha256 } from '../src/model/hash.js';
import { planToString } from '../src/plan/plan.js';
import { renderPlanMarkdown, renderPlanText } from '../src/plan/render.js';
import type { FileReader } from '../src/config/load-environment.js';
import { loadEnvironment } from '../src/config/load-environment.js';
import { docker, execIn } from './helpers/docker.js';
import { Bot, type BotOptions } from '../src/github/bot.js';
import { parseConfig } from '../src/config/config.js';
import { TreeListing, type GitHubPort } from '../src/github/github.js';
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


describeDocker('configs and secrets on the real Docker engine', () => {
  const { apply } = realApplyHarness(PROJECT);

  it('mounts configs and secrets as compose does; a rotation recreates only their users and never shows the value', async () => {
    const first = await loadEnvironment(repo('s3cr3t-value-one'), 'staging');
    expect((await apply(first.desired)).result).toBe('completed');
    expect(await execIn(cname('app'), 'cat /etc/app/nginx.conf; stat -c "%a %u %g" /etc/app/nginx.conf')).toBe('server { listen 80; }\n440 0 0\n');
    expect(await execIn(cname('app'), 'cat /motd; echo; stat -c "%a" /motd')).toBe('hello world\n444\n');
    expect(await execIn(cname('app'), 'cat /run/secrets/db_password; echo; stat -c "%a" /run/secrets/db_password')).toBe('s3cr3t-value-one\n444\n');
    expect(await execIn(cname('app'), 'cat /run/secrets/token; echo; stat -c "%a %u %g" /run/secrets/token')).toBe('tok-abcdef-123456\n400 1000 1000\n');
    expect(await execIn(cname('other'), 'cat /motd')).toBe('hello world');
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
    expect(await execIn(cname('app'), 'cat /run/secrets/db_password')).toBe('s3cr3t-value-two');
  }, 90_000);

  it('the app copies bound repository files and directories into the container, with their git mode; a changed file recreates the service', async () => {
    const compose = `services:
  web:
    image: berth-test/app:1
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    volumes:
      - ./conf/app.conf:/etc/app/app.conf:ro
      - ./html:/srv/html
      - ./bin/run.sh:/usr/local/bin/run.sh
      - data:/var/lib/app
      - ./dash/board.json:/var/lib/app/dashboards/board.json
volumes:
  data: {}
`;
    const files: Record<string, string> = {
      'deploy/compose.yml': compose,
      'deploy/conf/app.conf': 'listen 80;\n',
      'deploy/html/index.html': '<h1>one</h1>\n',
      'deploy/html/css/site.css': 'h1 {}\n',
      [`deploy/html/${'n'.repeat(150)}.txt`]: 'a name over ustar\'s 100 bytes\n',
      'deploy/bin/run.sh': '#!/bin/sh\necho ran\n',
      'deploy/dash/board.json': '{"v":1}\n',
    };
    const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0xff, 0x00, 0xfe, 0x80]);
    const config = parseConfig(`project: ${PROJECT}\nenvironments:\n  - name: staging\n    compose: [deploy/compose.yml]\n`, '.github/berth.yml');
    const atHead = (head: Record<string, string>) => {
      const gh = {
        readFile: async (_r: unknown, path: string) => head[path],
        readFileBytes: async (_r: unknown, path: string) => (path === 'deploy/html/logo.png' ? PNG : head[path] === undefined ? undefined : Buffer.from(head[path]!)),
      } as unknown as GitHubPort;
      const paths = [...Object.keys(head), 'deploy/html/logo.png'];
      const listing = new TreeListing(new Map(paths.map((p) => [p, sha256(p)])), new Map([['deploy/bin/run.sh', '100755']]));
      return new Bot({} as BotOptions).desiredAt(gh, { owner: 'acme', name: 'shop' }, config, config.environments[0]!, 'head1', listing);
    };
    const first = await atHead(files);
    expect((await apply(first)).result).toBe('completed');
    expect(await execIn(cname('web'), 'cat /etc/app/app.conf; stat -c "%a %u" /etc/app/app.conf')).toBe('listen 80;\n444 0\n');
    expect(await execIn(cname('web'), 'cat /srv/html/index.html /srv/html/css/site.css; stat -c "%a" /srv/html/index.html /srv/html/css')).toBe('<h1>one</h1>\nh1 {}\n644\n755\n');
    expect(await execIn(cname('web'), '/usr/local/bin/run.sh; stat -c "%a" /usr/local/bin/run.sh')).toBe('ran\n755\n');
    expect(await execIn(cname('web'), `cat /srv/html/${'n'.repeat(150)}.txt`)).toBe("a name over ustar's 100 bytes\n");
    // bytes that are not text arrive unchanged
    expect(await execIn(cname('web'), 'md5sum /srv/html/logo.png')).toBe(`${createHash('md5').update(PNG).digest('hex')}  /srv/html/logo.png\n`);
    // nothing of it is a mount: the container holds copies (and the one under the service's volume is written into it)
    expect((await docker.getContainer(cname('web')).inspect()).Mounts.map((m) => m.Destination)).toEqual(['/var/lib/app']);
    expect(await execIn(cname('web'), 'cat /var/lib/app/dashboards/board.json')).toBe('{"v":1}\n');
    const [again] = await planTargets(first, ['local'], observer);
    expect(again!.plan.nodes).toEqual([]);

    const changed = await atHead({ ...files, 'deploy/html/index.html': '<h1>two</h1>\n', 'deploy/dash/board.json': '{"v":2}\n' });
    const [p] = await planTargets(changed, ['local'], observer);
    expect(planToString(p!.plan)).toContain('service:web:1, CreateContainer, file deploy/dash/board.json changed, file deploy/html/index.html changed');
    expect((await apply(changed)).result).toBe('completed');
    expect(await execIn(cname('web'), 'cat /srv/html/index.html')).toBe('<h1>two</h1>\n');
    expect(await execIn(cname('web'), 'cat /var/lib/app/dashboards/board.json')).toBe('{"v":2}\n');
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
