// readOnce: the reads of one event, each made once (src/github/read-once.ts); CommitCache: a commit's tree and files across events.
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import type { GitHubPort, RepoRef } from '../src/github/github.js';
import { PartialListing, TreeListing } from '../src/github/github.js';
import { MAX_ENVIRONMENT_READ_BYTES, MAX_ENVIRONMENT_READS, repositoryReads } from '../src/github/repository-reads.js';
import { readOnce } from '../src/github/read-once.js';
import { CommitCache } from '../src/github/commit-cache.js';
import { OctokitGitHub } from '../src/github/octokit-github.js';
import { openStore } from '../src/store/open.js';

const repo: RepoRef = { owner: 'acme', name: 'shop' };
const other: RepoRef = { owner: 'acme', name: 'other' };

/** Git's name for a blob of this text. */
const gitBlob = (text: string) => createHash('sha1').update(`blob ${Buffer.byteLength(text)}\0${text}`).digest('hex');

/**
 * A GitHub double that records every read it answers. With `blobs`, files
 * carry their Git blob names (`lie` gives a file a name that is not its hash)
 * and listings are TreeListings; without, no blob is named.
 */
function recording(files: Record<string, string>, opts: { failFirst?: string; blobs?: boolean; lie?: string } = {}) {
  const calls: string[] = [];
  let failed = false;
  const blobOf = (path: string, text: string) => (!opts.blobs ? '' : path === opts.lie ? gitBlob('something else') : gitBlob(text));
  const gh = {
    async readFile(r: RepoRef, path: string, ref?: string) {
      return (await gh.readFileBlob(r, path, ref))?.text;
    },
    async readFileBlob(r: RepoRef, path: string, ref?: string) {
      calls.push(`read ${r.name} ${ref ?? '(default)'} ${path}`);
      if (opts.failFirst === path && !failed) {
        failed = true;
        throw Object.assign(new Error('502'), { status: 502 });
      }
      const text = files[path];
      return text === undefined ? undefined : { text, blob: blobOf(path, text) };
    },
    async listFiles(r: RepoRef, sha: string) {
      calls.push(`tree ${r.name} ${sha}`);
      return opts.blobs ? new TreeListing(new Map(Object.entries(files).map(([p, t]) => [p, blobOf(p, t)]))) : new Set(Object.keys(files));
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

// CommitCache: what a commit holds, remembered across events (src/github/commit-cache.ts).
describe('CommitCache', () => {
  const A = 'a'.repeat(40);
  const B = 'b'.repeat(40);

  it('a remembered listing keeps its git modes (a copied script stays executable, so a second plan sees no change)', async () => {
    let asked = 0;
    const gh = {
      async listFiles() {
        asked++;
        return new TreeListing(new Map([['run.sh', gitBlob('echo\n')], ['conf', gitBlob('x')]]), new Map([['run.sh', '100755']]));
      },
    } as unknown as GitHubPort;
    const cache = new CommitCache();
    await cache.wrap(gh).listFiles(repo, A);
    const again = await cache.wrap(gh).listFiles(repo, A);
    expect(asked).toBe(1);
    expect(again).toBeInstanceOf(TreeListing);
    expect([...(again as TreeListing).modes]).toEqual([['run.sh', '100755']]);
  });

  it('a copied file’s bytes are read once per blob, at any commit whose listing names it; a blob the bytes are not is not remembered under it', async () => {
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0xff, 0x00]);
    const blob = createHash('sha1').update(`blob ${png.length}\0`).update(png).digest('hex');
    const reads: string[] = [];
    let served = png;
    const gh = {
      async listFiles(_r: RepoRef, sha: string) {
        return new TreeListing(new Map([['html/logo.png', sha === 'c'.repeat(40) ? 'd'.repeat(40) : blob]]));
      },
      async readFileBytes(_r: RepoRef, path: string, ref?: string) {
        reads.push(`${ref} ${path}`);
        return Buffer.from(served);
      },
    } as unknown as GitHubPort;
    const cache = new CommitCache();
    for (const commit of [A, B]) {
      const gh1 = cache.wrap(gh);
      await gh1.listFiles(repo, commit);
      const got = await gh1.readFileBytes(repo, 'html/logo.png', commit);
      expect(got!.equals(png)).toBe(true);
      got![0] = 0; // a caller's copy: the cache is untouched
    }
    expect(reads).toEqual([`${A} html/logo.png`]);
    // a listing naming another blob than the bytes GitHub serves: read each time, never remembered under that name
    const C = 'c'.repeat(40);
    served = Buffer.from('other');
    for (let i = 0; i < 2; i++) {
      const gh1 = cache.wrap(gh);
      await gh1.listFiles(repo, C);
      await gh1.readFileBytes(repo, 'html/logo.png', C);
    }
    expect(reads).toEqual([`${A} html/logo.png`, `${C} html/logo.png`, `${C} html/logo.png`]);
  });

  it('a later event reads a commit’s tree and files from the cache; the default branch, branch names and other repositories go to GitHub', async () => {
    const { gh, calls } = recording({ 'compose.yml': 'x', '.github/berth.yml': 'project: p\n' });
    const cache = new CommitCache();
    // Two events (each with its own per-event dedupe), both at commit A.
    for (let event = 0; event < 2; event++) {
      const cached = readOnce(cache.wrap(gh));
      expect(await cached.readFile(repo, '.github/berth.yml')).toBe('project: p\n');
      expect(await cached.listFiles(repo, A)).toEqual(new Set(['compose.yml', '.github/berth.yml']));
      expect(await cached.readFile(repo, 'compose.yml', A)).toBe('x');
      expect(await cached.readFile(repo, 'compose.yml', 'main')).toBe('x');
    }
    expect(calls).toEqual([
      'read shop (default) .github/berth.yml',
      `tree shop ${A}`,
      `read shop ${A} compose.yml`,
      'read shop main compose.yml',
      // the second event: only what a commit SHA does not pin
      'read shop (default) .github/berth.yml',
      'read shop main compose.yml',
    ]);
    // The same commit through another repository, another commit, an abbreviated SHA: asked.
    const next = readOnce(cache.wrap(gh));
    await next.readFile(other, 'compose.yml', A);
    await next.readFile(repo, 'compose.yml', B);
    await next.readFile(repo, 'compose.yml', A.slice(0, 7));
    expect(calls.slice(6)).toEqual([`read other ${A} compose.yml`, `read shop ${B} compose.yml`, `read shop ${A.slice(0, 7)} compose.yml`]);
    expect(cache.stats()).toMatchObject({ entries: 4, hits: 2 });
  });

  it('at a new commit, a file whose blob was read at another commit is not read again; only a blob whose text hashes to its name is kept, per repository', async () => {
    const files: Record<string, string> = { 'compose.yml': 'services: {}\n', 'compose.prod.yml': 'services: {web: {}}\n', '.env': 'TAG=1\n' };
    const { gh, calls } = recording(files, { blobs: true, lie: '.env' });
    const cache = new CommitCache();
    const event = () => readOnce(cache.wrap(gh));
    const first = event();
    await first.listFiles(repo, A);
    for (const p of Object.keys(files)) expect(await first.readFile(repo, p, A)).toBe(files[p]);
    expect(calls.splice(0)).toEqual([`tree shop ${A}`, `read shop ${A} compose.yml`, `read shop ${A} compose.prod.yml`, `read shop ${A} .env`]);
    // A push that changed compose.prod.yml alone: the new commit's listing, then only that file.
    files['compose.prod.yml'] = 'services: {web: {image: x}}\n';
    const second = event();
    await second.listFiles(repo, B);
    for (const p of Object.keys(files)) expect(await second.readFile(repo, p, B)).toBe(files[p]);
    // .env is read again: GitHub named a blob its text does not hash to, so that text was never kept as the blob.
    expect(calls.splice(0)).toEqual([`tree shop ${B}`, `read shop ${B} compose.prod.yml`, `read shop ${B} .env`]);
    // The same blobs through another repository: asked (an installation's reach is per repository).
    const third = event();
    await third.listFiles(other, B);
    expect(await third.readFile(other, 'compose.yml', B)).toBe(files['compose.yml']);
    expect(calls.splice(0)).toEqual([`tree other ${B}`, `read other ${B} compose.yml`]);
  });

  it('shares blob texts through the store: another process (a restart, a replica) lists the tree and reads no file it holds; a text that no longer hashes to its name, or a failing store, costs a GitHub read', async () => {
    const files: Record<string, string> = { 'compose.yml': 'services: {}\n', 'compose.prod.yml': 'services: {web: {}}\n', '.env': 'TAG=1\n' };
    const { gh, calls } = recording(files, { blobs: true, lie: '.env' });
    const store = await openStore('sqlite::memory:');
    try {
      const first = readOnce(new CommitCache(undefined, store).wrap(gh));
      await first.listFiles(repo, A);
      for (const p of Object.keys(files)) expect(await first.readFile(repo, p, A)).toBe(files[p]);
      expect(calls.splice(0)).toEqual([`tree shop ${A}`, `read shop ${A} compose.yml`, `read shop ${A} compose.prod.yml`, `read shop ${A} .env`]);
      // .env's text does not hash to the blob GitHub named: never stored.
      expect(await store.getFileBlob('acme/shop', gitBlob(files['compose.yml']!))).toBe(files['compose.yml']);
      expect(await store.getFileBlob('acme/shop', gitBlob('something else'))).toBeUndefined();

      // A new process on the same store, at a new head where nothing changed: the listing, and .env alone.
      const restarted = new CommitCache(undefined, store);
      const second = readOnce(restarted.wrap(gh));
      await second.listFiles(repo, B);
      for (const p of Object.keys(files)) expect(await second.readFile(repo, p, B)).toBe(files[p]);
      expect(calls.splice(0)).toEqual([`tree shop ${B}`, `read shop ${B} .env`]);
      expect(restarted.stats().sharedHits).toBe(2);
      // Another repository's process finds nothing of this one's.
      const elsewhere = readOnce(new CommitCache(undefined, store).wrap(gh));
      await elsewhere.listFiles(other, B);
      expect(await elsewhere.readFile(other, 'compose.yml', B)).toBe(files['compose.yml']);
      expect(calls.splice(0)).toEqual([`tree other ${B}`, `read other ${B} compose.yml`]);

      // A stored text that does not hash to its name (a damaged row) is not used: GitHub is asked.
      const damaged = { getFileBlob: async () => 'services: {evil: {privileged: true}}\n', putFileBlob: async () => undefined };
      const third = readOnce(new CommitCache(undefined, damaged).wrap(gh));
      await third.listFiles(repo, B);
      expect(await third.readFile(repo, 'compose.prod.yml', B)).toBe(files['compose.prod.yml']);
      expect(calls.splice(0)).toEqual([`tree shop ${B}`, `read shop ${B} compose.prod.yml`]);
      // A store that fails is reported and read around.
      const errors: unknown[] = [];
      const down = { getFileBlob: async () => Promise.reject(new Error('store down')), putFileBlob: async () => Promise.reject(new Error('store down')) };
      const fourth = readOnce(new CommitCache(undefined, down, (e) => errors.push(e)).wrap(gh));
      await fourth.listFiles(repo, B);
      expect(await fourth.readFile(repo, 'compose.yml', B)).toBe(files['compose.yml']);
      expect(calls.splice(0)).toEqual([`tree shop ${B}`, `read shop ${B} compose.yml`]);
      expect(errors.map(String)).toEqual(['Error: store down', 'Error: store down']);
    } finally {
      await store.close();
    }
  });

  it('never remembers an absent file (GitHub also answers 404 for a commit it does not know yet) nor a failure', async () => {
    const files: Record<string, string> = {};
    const { gh, calls } = recording(files, { failFirst: 'compose.yml' });
    const cache = new CommitCache();
    await expect(cache.wrap(gh).readFile(repo, 'compose.yml', A)).rejects.toThrow('502');
    expect(await cache.wrap(gh).readFile(repo, 'compose.yml', A)).toBeUndefined();
    files['compose.yml'] = 'now there';
    expect(await cache.wrap(gh).readFile(repo, 'compose.yml', A)).toBe('now there');
    expect(await cache.wrap(gh).readFile(repo, 'compose.yml', A)).toBe('now there');
    expect(calls).toEqual([`read shop ${A} compose.yml`, `read shop ${A} compose.yml`, `read shop ${A} compose.yml`]);
  });

  it('a caller changing the tree it was given does not change what the next caller gets', async () => {
    const { gh } = recording({ 'compose.yml': 'x' });
    const cache = new CommitCache();
    const first = await cache.wrap(gh).listFiles(repo, A);
    first.add('.env');
    first.delete('compose.yml');
    expect(await cache.wrap(gh).listFiles(repo, A)).toEqual(new Set(['compose.yml']));
  });

  it('is bounded by bytes: the least recently used go first, an entry over a quarter of the budget is never kept; 0 turns it off', async () => {
    const big = 'y'.repeat(1000);
    const { gh, calls } = recording({ a: big, b: big, c: big, d: big, huge: 'z'.repeat(2000) });
    const cache = new CommitCache(10_000);
    const read = (p: string) => cache.wrap(gh).readFile(repo, p, A);
    for (const p of ['a', 'b', 'c', 'd']) await read(p); // ≈ 2.2 kB each: four fit
    await read('a'); // a hit: a is now the most recent
    await read('huge'); // ≈ 4.2 kB, over 10 000 / 4: read, not kept
    await read('huge');
    expect(calls.filter((c) => c.endsWith(' huge'))).toHaveLength(2);
    expect(cache.stats().entries).toBe(4);
    // A fifth fits only when the least recently used (b) goes.
    const { gh: gh2 } = recording({ e: big });
    await cache.wrap(gh2).readFile(repo, 'e', A);
    expect(cache.stats().entries).toBe(4);
    expect(cache.stats().bytes).toBeLessThanOrEqual(10_000);
    const before = calls.length;
    for (const p of ['a', 'c', 'd']) await read(p);
    expect(calls.length).toBe(before);
    await read('b');
    expect(calls.slice(before)).toEqual([`read shop ${A} b`]);

    const off = new CommitCache(0);
    const { gh: gh3, calls: calls3 } = recording({ a: 'x' });
    await off.wrap(gh3).readFile(repo, 'a', A);
    await off.wrap(gh3).readFile(repo, 'a', A);
    expect(calls3).toHaveLength(2);
    expect(() => CommitCache.fromEnv({ BERTH_COMMIT_CACHE_BYTES: '32MB' })).toThrow(/BERTH_COMMIT_CACHE_BYTES/);
    expect(CommitCache.fromEnv({ BERTH_COMMIT_CACHE_BYTES: '0' }).maxBytes).toBe(0);
    expect(CommitCache.fromEnv({}).maxBytes).toBe(32 * 1024 * 1024);
  });
});

describe('repositoryReads: what loading one environment reads of a commit is bounded before it is read', () => {
  const MiB = 1024 * 1024;
  const A = 'a'.repeat(40);
  /** A GitHub double serving `n` bytes at every path it is asked for, recording each read. */
  const serving = (bytesOf: (path: string) => number) => {
    const calls: string[] = [];
    const gh = {
      async readFile(_r: RepoRef, path: string) {
        calls.push(`text ${path}`);
        return 'x'.repeat(bytesOf(path));
      },
      async readFileBytes(_r: RepoRef, path: string) {
        calls.push(`bytes ${path}`);
        return Buffer.alloc(bytesOf(path));
      },
    } as unknown as GitHubPort;
    return { gh, calls };
  };
  const listing = (sizes: Record<string, number | undefined>) =>
    new TreeListing(
      new Map(Object.keys(sizes).map((p) => [p, gitBlob(p)])),
      new Map(),
      new Map(Object.entries(sizes).filter((e): e is [string, number] => e[1] !== undefined)),
    );

  it('a file the listing says is over 1 MiB, or one that takes the environment over 24 MiB, is refused without a request', async () => {
    const { gh, calls } = serving(() => 1_000_000);
    const files: Record<string, number> = { 'big.bin': 2 * MiB, ...Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`f${i}.bin`, 1_000_000])) };
    const reads = repositoryReads(gh, repo, A, listing(files));
    await expect(reads.bytes('big.bin')).rejects.toMatchObject({ code: 'too_large', file: 'big.bin', message: expect.stringContaining('file is 2097152 bytes, more than the 1048576 bytes berth reads') });
    expect(calls).toEqual([]);
    // 25 files of 1,000,000 bytes fit in 24 MiB (25,165,824); the 26th is refused before it is asked for
    for (let i = 0; i < 25; i++) await reads.bytes(`f${i}.bin`);
    await expect(reads.text('f25.bin')).rejects.toMatchObject({ code: 'too_large', file: 'f25.bin', message: expect.stringContaining(`over ${MAX_ENVIRONMENT_READ_BYTES} bytes`) });
    expect(calls).toHaveLength(25);
    expect(calls).not.toContain('text f25.bin');
    // a path the listing does not hold: no request; the same read twice: one request, counted once
    const again = repositoryReads(gh, repo, A, listing({ 'a.txt': 10 }));
    expect(await again.text('missing.txt')).toBeUndefined();
    await Promise.all([again.text('a.txt'), again.text('a.txt')]);
    expect(calls.slice(25)).toEqual(['text a.txt']);
  });

  it('without sizes (a listing cut short, a stand-in without them) each read is counted once made, and the next read over the limit is not made', async () => {
    const { gh, calls } = serving(() => MiB);
    const partial = new PartialListing([]);
    const reads = repositoryReads(gh, repo, A, partial);
    for (let i = 0; i < 24; i++) await reads.bytes(`f${i}.bin`);
    await expect(reads.bytes('f24.bin')).rejects.toMatchObject({ code: 'too_large', file: 'f24.bin' });
    // the 25th was read (its size was not known) and is what went over; nothing after it is asked for
    await expect(reads.bytes('f25.bin')).rejects.toMatchObject({ code: 'too_large', file: 'f25.bin' });
    expect(calls).toHaveLength(25);
    // a listing whose size is wrong (smaller than what is served) is corrected by what is read
    const lying = serving(() => 5 * MiB);
    const lied = repositoryReads(lying.gh, repo, A, listing({ ...Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`l${i}`, 10])) }));
    for (let i = 0; i < 4; i++) await lied.text(`l${i}`);
    await expect(lied.text('l4')).rejects.toMatchObject({ code: 'too_large' });
    await expect(lied.text('l5')).rejects.toMatchObject({ code: 'too_large' });
    expect(lying.calls).toEqual(['text l0', 'text l1', 'text l2', 'text l3', 'text l4']);
  });

  it('at most 400 files are read for one environment', async () => {
    const { gh, calls } = serving(() => 1);
    const reads = repositoryReads(gh, repo, A, new PartialListing([]));
    for (let i = 0; i < MAX_ENVIRONMENT_READS; i++) await reads.text(`f${i}`);
    await expect(reads.text('one-more')).rejects.toMatchObject({ code: 'too_large', message: expect.stringContaining(`more than ${MAX_ENVIRONMENT_READS} repository files`) });
    expect(calls).toHaveLength(MAX_ENVIRONMENT_READS);
  });

  it('the commit cache keeps a listing’s sizes', async () => {
    let asked = 0;
    const gh = {
      async listFiles() {
        asked++;
        return new TreeListing(new Map([['a', gitBlob('a')]]), new Map(), new Map([['a', 1]]));
      },
    } as unknown as GitHubPort;
    const cache = new CommitCache();
    await cache.wrap(gh).listFiles(repo, A);
    const again = await cache.wrap(gh).listFiles(repo, A);
    expect(asked).toBe(1);
    expect([...(again as TreeListing).sizes]).toEqual([['a', 1]]);
  });
});

describe('OctokitGitHub reads', () => {
  const answering = (data: unknown) => new OctokitGitHub({ rest: { repos: { getContent: async () => ({ data }) } } } as unknown as ConstructorParameters<typeof OctokitGitHub>[0]);
  it('a file is bounded by its content, not only by the size the answer claims', async () => {
    const content = Buffer.alloc(2 * 1024 * 1024, 1).toString('base64');
    await expect(answering({ type: 'file', encoding: 'base64', size: 10, sha: 'x', content }).readFileBytes(repo, 'big.bin', 'a'.repeat(40))).rejects.toMatchObject({ code: 'too_large', file: 'big.bin' });
    await expect(answering({ type: 'file', encoding: 'base64', size: 2 * 1024 * 1024, sha: 'x', content: '' }).readFile(repo, 'big.bin')).rejects.toMatchObject({ code: 'too_large', message: expect.stringContaining('file is 2097152 bytes') });
    // as GitHub serves 1 MiB: 60-character lines
    const mib = Buffer.alloc(1024 * 1024, 7);
    const wrapped = mib.toString('base64').match(/.{1,60}/g)!.join('\n') + '\n';
    expect((await answering({ type: 'file', encoding: 'base64', size: mib.length, sha: 'x', content: wrapped }).readFileBytes(repo, 'ok.bin'))!.equals(mib)).toBe(true);
  });
});
