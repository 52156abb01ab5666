// The archive berth uploads into a container (configs, secrets, copied repository files), read back by GNU tar:
// paths that fit ustar's fields, paths split over its prefix, and names too long for it (a PAX header).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { tarOf } from '../src/docker/tar.js';

it('GNU tar reads every entry back with its path, bytes and mode, long names included', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-tar-'));
  try {
    const long = `${'n'.repeat(180)}.conf`; // a name ustar's 100 bytes cannot hold
    const deep = `/${Array.from({ length: 12 }, (_, i) => `dir${i}-${'d'.repeat(10)}`).join('/')}/f.txt`; // > 100 bytes, splits over the prefix
    const files = [
      { path: '/etc/app/app.conf', content: Buffer.from('listen 80;\n'), mode: 0o444, uid: 0, gid: 0 },
      { path: deep, content: Buffer.from('deep\n'), mode: 0o644, uid: 0, gid: 0 },
      { path: `/srv/${long}`, content: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff]), mode: 0o755, uid: 0, gid: 0 },
      { path: '/srv/ünïcødé/ファイル.txt', content: Buffer.from('utf-8 names\n'), mode: 0o600, uid: 0, gid: 0 },
    ];
    writeFileSync(join(dir, 'a.tar'), tarOf(files));
    const out = join(dir, 'out');
    execFileSync('mkdir', [out]);
    execFileSync('tar', ['-xf', join(dir, 'a.tar'), '-C', out, '--no-same-owner']);
    for (const f of files) {
      expect(readFileSync(join(out, f.path)).equals(f.content), f.path).toBe(true);
      expect(statSync(join(out, f.path)).mode & 0o7777, f.path).toBe(f.mode);
    }
    const listed = execFileSync('tar', ['-tf', join(dir, 'a.tar')]).toString().trim().split('\n');
    expect(listed).toEqual(files.map((f) => f.path.slice(1)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
