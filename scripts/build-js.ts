/**
 * Compiles src/ to dist/ as plain JavaScript, so `tvm` and the daemon start without tsx
 * compiling TypeScript at every start (bin/tvm.js runs dist/ while it is fresh).
 *
 *   node --import tsx scripts/build-js.ts      (scripts/setup.sh runs it)
 *
 * One .js per .ts, in the same layout (dist/cli/main.js for src/cli/main.ts): the daemon finds
 * its worker files, the agent binary and kernels/ relative to its own modules, which a bundle
 * would break. esbuild strips the types only (tsc checks them in `npm run typecheck`): a few
 * seconds for the whole tree. Two exceptions, bundled because they start often: the CLI's own
 * modules (dist/cli/main.js, at every `tvm` call) and the VM supervisor (at every
 * `docker run --isolation=vm`; built by the function the daemon uses from the sources,
 * supervisor-bundle.ts).
 *
 * dist/ is replaced whole (built aside, then renamed), so a tvm starting meanwhile sees the old
 * build, no build, or the new one; never half of one. The stamp written last says which source
 * files the build saw and when it started (bin/dist-fresh.js compares them with src/).
 */
import { cp, mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { buildSupervisorBundle } from '../src/runtime/vm/supervisor-bundle.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SRC = path.join(REPO, 'src');
const DIST = path.join(REPO, 'dist');
/** Read by bin/dist-fresh.js (which bin/tvm.js asks): keep the two in step. */
export const STAMP = '.tvm-build.json';

export interface BuildStamp {
  /** when the build started reading src/ (ms since the epoch): a source changed later is newer */
  startedMs: number;
  /** how many .ts files src/ held: one added or removed changes it */
  sources: number;
}

async function sources(): Promise<string[]> {
  const entries = await readdir(SRC, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith('.ts')).map((e) => path.join(e.parentPath, e.name));
}

/**
 * dist/cli/main.js as one file of the CLI's own modules (src/cli/**): every `tvm` call loads
 * it, and one file loads faster than twenty. What it imports from outside src/cli (errors,
 * the API's small helpers; the daemon and the VMM behind dynamic imports) stays the compiled
 * module next door, so each module has one instance in a process (instanceof holds).
 */
async function bundleCli(out: string): Promise<void> {
  const cliDir = path.join(SRC, 'cli');
  const outside: esbuild.Plugin = {
    name: 'outside-src-cli-stays-a-module',
    setup(b) {
      b.onResolve({ filter: /^\./ }, (args) => {
        const target = path.resolve(args.resolveDir, args.path);
        // (a package's own relative imports are bundled with it)
        if (!args.importer.startsWith(cliDir + path.sep) || target.startsWith(cliDir + path.sep)) return undefined;
        // the compiled module's path relative to dist/cli/main.js (sources import it as .js already)
        return { path: `./${path.relative(cliDir, target)}`, external: true };
      });
    },
  };
  await esbuild.build({
    entryPoints: [path.join(cliDir, 'main.ts')],
    outfile: path.join(out, 'cli', 'main.js'),
    allowOverwrite: true,
    bundle: true,
    // commander inside too: loading its CommonJS files through Node's loaders took longer
    // than the rest of the CLI; its require()s of Node's modules go through createRequire
    external: Object.keys(
      (JSON.parse(await readFile(path.join(REPO, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies,
    ).filter((d) => d !== 'commander'),
    banner: {
      js: "import { createRequire as __tvmCreateRequire } from 'node:module';\nconst require = __tvmCreateRequire(import.meta.url);",
    },
    plugins: [outside],
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: 'linked',
    logLevel: 'error',
  });
}

export async function buildJs(): Promise<{ files: number; ms: number }> {
  // Truncated to whole ms, and a little early, so that a file written during the build compares newer.
  const startedMs = Math.floor(Date.now()) - 1;
  const t0 = performance.now();
  const files = await sources();
  const tmp = await mkdtemp(path.join(REPO, '.dist-'));
  try {
    await esbuild.build({
      entryPoints: files,
      outbase: SRC,
      outdir: tmp,
      bundle: false,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      // with NODE_OPTIONS=--enable-source-maps, stack traces name the .ts lines
      sourcemap: 'linked',
      logLevel: 'error',
    });
    await bundleCli(tmp);
    const bundleCache = path.join(tmp, '.supervisor');
    const { main } = await buildSupervisorBundle(bundleCache);
    // supervisor-main.js and its poller worker, side by side where supervisor.ts looks for them
    for (const f of await readdir(path.dirname(main))) await cp(path.join(path.dirname(main), f), path.join(tmp, 'runtime', 'vm', f));
    await rm(bundleCache, { recursive: true });
    // the mirror's map belongs to the unbundled supervisor-main.js the bundle replaced
    await rm(path.join(tmp, 'runtime', 'vm', 'supervisor-main.js.map'));
    const stamp: BuildStamp = { startedMs, sources: files.length };
    await writeFile(path.join(tmp, STAMP), `${JSON.stringify(stamp)}\n`);
    const old = `${tmp}-old`;
    const hadDist = await stat(DIST).then(
      () => true,
      (e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
        return false;
      },
    );
    if (hadDist) await rename(DIST, old);
    await rename(tmp, DIST);
    await rm(old, { recursive: true, force: true });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return { files: files.length, ms: performance.now() - t0 };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const r = await buildJs();
  process.stdout.write(`dist/: ${r.files} modules compiled in ${(r.ms / 1000).toFixed(1)} s\n`);
}
