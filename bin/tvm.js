#!/usr/bin/env node
// Runs the compiled build (dist/, made by scripts/build-js.ts, which scripts/setup.sh runs) while
// no source is newer than it; otherwise the TypeScript sources through tsx, so an edited checkout
// runs what it holds without a build step (at about half a second more per start).
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { distIsFresh } from './dist-fresh.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

if (process.env.TVM_FROM_SOURCES !== '1' && distIsFresh(root)) {
  // Source maps stay off: reading them at each load cost a CLI call 15% more CPU. The compiled
  // code reads like the sources; NODE_OPTIONS=--enable-source-maps names the .ts lines.
  await import(pathToFileURL(path.join(root, 'dist', 'cli', 'main.js')).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(path.join(root, 'src', 'cli', 'main.ts')).href);
}
