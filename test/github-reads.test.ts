// readOnce: the reads of one event, each made once (src/github/read-once.ts).
import { describe, expect, it } from 'vitest';
import type { GitHubPort, RepoRef } from '../src/github/github.js';
import { readOnce } from '../src/github/read-once.js';

const repo: RepoRef = { owner: 'acme', name: 'shop' };
const other: RepoRef = { owner: 'acme', name: 'other' };

/** A GitHub double that records every read it answers. */
function recording(files: Record<string, string>, opts: { failFirst?: string } = {}) {
  const calls: string[] = [];
  let failed = false;
  const gh = {
    async readFile(r: RepoRef, path: string, ref?: string) {
      calls.push(`read ${r.name} ${ref ?? '(default)'} ${path}`);
      if (opts.failFirst === path && !failed) {
        failed = true;
        throw Object.assign(new Error('502'), { status: 502 });
      }
      return files[path];
    },
    async listFiles(r: RepoRef, sha: string) {
      calls.push(`tree ${r.name} ${sha}`);
      return new Set(Object.keys(files));
    },
    async defaultBranch(r: RepoRef) {
      calls.push(`branch ${r.name}`);
      return 'main';
    },
    async getPull() {
      calls.push('pull');
      return {};
    },
  } as unknown as GitHubPort;
  return { gh, calls };
}

describe('readOnce', () => {
  it('answers a repeated read (same repository, ref and path) from the first one, concurrent ones included', async () => {
    const { gh, calls } = recording({ 'compose.yml': 'services: {}\n' });
    const cached = readOnce(gh);
    const [a, b] = await Promise.all([cached.readFile(repo, 'compose.yml', 'abc'), cached.readFile(repo, 'compose.yml', 'abc')]);
    expect(await cached.readFile(repo, 'compose.yml', 'abc')).toBe(a);
    expect(b).toBe(a);
    // Another commit, another repository, the default branch: each a read of its own.
    await cached.readFile(repo, 'compose.yml', 'def');
    await cached.readFile(other, 'compose.yml', 'abc');
    await cached.readFile(repo, 'compose.yml');
    await cached.readFile(repo, 'compose.yml');
    expect(calls).toEqual(['read shop abc compose.yml', 'read shop def compose.yml', 'read other abc compose.yml', 'read shop (default) compose.yml']);
  });

  it('a tree listed in this event says a file is absent without asking; the tree and the default branch are asked once', async () => {
    const { gh, calls } = recording({ 'compose.yml': 'x' });
    const cached = readOnce(gh);
    expect(await cached.listFiles(repo, 'abc')).toEqual(new Set(['compose.yml']));
    await cached.listFiles(repo, 'abc');
    expect(await cached.readFile(repo, '.env', 'abc')).toBeUndefined();
    expect(await cached.readFile(repo, 'compose.yml', 'abc')).toBe('x');
    expect(await cached.defaultBranch(repo)).toBe('main');
    await cached.defaultBranch(repo);
    expect(calls).toEqual(['tree shop abc', 'read shop abc compose.yml', 'branch shop']);
  });

  it('a failed read is not remembered: the next caller asks GitHub again', async () => {
    const { gh, calls } = recording({ 'compose.yml': 'x' }, { failFirst: 'compose.yml' });
    const cached = readOnce(gh);
    await expect(cached.readFile(repo, 'compose.yml', 'abc')).rejects.toThrow('502');
    expect(await cached.readFile(repo, 'compose.yml', 'abc')).toBe('x');
    expect(calls).toHaveLength(2);
  });

  it('anything else goes to GitHub every time (a PR’s state may change within an event)', async () => {
    const { gh, calls } = recording({});
    const cached = readOnce(gh);
    await cached.getPull(repo, 1);
    await cached.getPull(repo, 1);
    expect(calls).toEqual(['pull', 'pull']);
  });
});
