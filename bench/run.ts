// `npm run bench [-- name…]`: runs the bench modules in bench/ (all of them,
// or those whose file name, or `file:export`, contains one of the names),
// logs progress, then prints every figure as one JSON line — those JSON lines
// are the last lines of the output. Benchmarks report; they never assert.
//
// A bench module either exports `bench(log)` (only that is run), or every
// function it exports is a bench. A bench returns an array of figures: plain
// objects with at least a `name` (see lib.ts for the usual shape).
//
// Each bench runs in a Node process of its own (this file again, with
// `--only-id <id>`): in one process, a bench ran on the heap, compiled code
// and leftover timers of every bench before it (a 2,000-service render
// measured 60 ms alone and 100 ms after the apply, comment and drift benches,
// its CPU time doubled by their garbage being collected), so a figure
// depended on which benches happened to run first.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describeFigure } from './lib.js';

const HERE = dirname(fileURLToPath(import.meta.url));
// `.js` when run from tsc's output (npm run bench), `.ts` when run by tsx.
const EXT = import.meta.url.endsWith('.js') ? '.js' : '.ts';
const NOT_BENCHES = new Set([`run${EXT}`, `lib${EXT}`]);

type AnyFigure = { name: string } & Record<string, unknown>;
type Bench = (log: (line: string) => void) => unknown;

const isFigures = (x: unknown): x is AnyFigure[] =>
  Array.isArray(x) && x.every((f) => !!f && typeof f === 'object' && typeof (f as { name?: unknown }).name === 'string');

/** Runs one bench in a child process: its log lines pass through, its figures (JSON lines) are returned. */
function runIsolated(id: string): Promise<{ figures: AnyFigure[]; ok: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--only-id', id], { stdio: ['ignore', 'pipe', 'inherit'] });
    const figures: AnyFigure[] = [];
    let rest = '';
    const line = (l: string) => {
      if (l.startsWith('{')) {
        try {
          const f = JSON.parse(l) as unknown;
          if (isFigures([f])) return void figures.push(f as AnyFigure);
        } catch {
          // not a figure: printed as it is
        }
      }
      console.log(l);
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop()!;
      lines.forEach(line);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (rest) line(rest);
      resolve({ figures, ok: code === 0 });
    });
  });
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const onlyId = args.includes('--only-id') ? args[args.indexOf('--only-id') + 1] : undefined;
  const only = args.filter((a, i) => !a.startsWith('-') && args[i - 1] !== '--only-id');
  const wanted = (id: string) => (onlyId !== undefined ? id === onlyId : !only.length || only.some((o) => id.includes(o)));
  const files = readdirSync(HERE)
    .filter((f) => f.endsWith(EXT) && !f.endsWith('.d.ts') && !NOT_BENCHES.has(f) && !f.startsWith('_'))
    .sort();
  const figures: AnyFigure[] = [];
  let failed = 0;
  let ran = 0;
  for (const file of files) {
    const name = basename(file, EXT);
    const log = (line: string) => console.log(`[bench:${name}] ${line}`);
    let mod: Record<string, unknown>;
    try {
      mod = (await import(pathToFileURL(join(HERE, file)).href)) as Record<string, unknown>;
    } catch (err) {
      if (!wanted(name)) continue;
      failed++;
      log(`FAILED to load: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      continue;
    }
    const benches: [string, Bench][] =
      typeof mod.bench === 'function' ? [['bench', mod.bench as Bench]] : Object.entries(mod).filter((e): e is [string, Bench] => typeof e[1] === 'function');
    for (const [exportName, fn] of benches) {
      const id = exportName === 'bench' ? name : `${name}:${exportName}`;
      if (!wanted(id)) continue;
      ran++;
      const t0 = Date.now();
      if (onlyId === undefined) {
        const { figures: got, ok } = await runIsolated(id);
        figures.push(...got);
        if (!ok) failed++;
        continue;
      }
      try {
        const got = await fn(log);
        if (!isFigures(got)) throw new Error(`${id} returned something other than an array of figures`);
        for (const f of got) log(describeFigure(f));
        figures.push(...got);
        log(`${id} done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      } catch (err) {
        failed++;
        log(`${id} FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      }
    }
  }
  if (!ran) console.error(`no bench matches ${only.join(', ')}`);
  for (const f of figures) console.log(JSON.stringify(f));
  return failed || !ran ? 1 : 0;
}

process.exitCode = await main();
