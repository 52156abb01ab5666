#!/usr/bin/env node
// Runs the compiled CLI when the project has been built, the TypeScript
// sources through tsx otherwise (a fresh clone after `npm install`).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'dist', 'src', 'cli', 'main.js');
let mod;
if (existsSync(built) && !process.env.BERTH_FROM_SOURCE) {
  mod = await import(pathToFileURL(built).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  mod = await import(pathToFileURL(join(root, 'src', 'cli', 'main.ts')).href);
}
process.exitCode = await mod.main(process.argv.slice(2));
