// The CLI prints what a failed read says, and a read's path may be built from a secret variable: an env_file
// path of `${DB_PASSWORD}` and 300 more characters fails with ENAMETOOLONG quoting the whole path (red team of
// 2026-12-05, evening). The CLI learned the environment's secrets only after the load succeeded, so the value
// went out in clear; it now learns them before the first read.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';

const SECRET = 'Tr0ub4dorSecretX';
const dir = mkdtempSync(join(tmpdir(), 'berth-cli-read-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a read the CLI cannot make is reported without the secret its path was built from', () => {
  it('ENAMETOOLONG on an env_file path built from a secret variable', async () => {
    mkdirSync(join(dir, '.github'));
    writeFileSync(join(dir, '.github/berth.yml'), `project: shop\nenvironments:\n  - name: staging\n    compose: [compose.yml]\n    variables:\n      DB_PASSWORD: "${SECRET}"\n`);
    writeFileSync(join(dir, 'compose.yml'), `services:\n  web:\n    image: registry.example/web:1\n    env_file:\n      - path: "\${DB_PASSWORD}${'a'.repeat(300)}.env"\n        required: false\n`);
    const printed: string[] = [];
    const code = await main(['plan', '--repo', dir, '--env', 'staging', '--docker', 'unix:///nonexistent.sock'], { out: (s) => printed.push(s), err: (s) => printed.push(s) });
    expect(code).toBe(1);
    // the failure is still said (the reader's own words), the secret's value is not
    expect(printed.join('\n')).toContain('ENAMETOOLONG');
    expect(printed.join('\n')).not.toContain(SECRET);
  });
});
