/**
 * What `tvm --help` and `tvm run` load before they do anything: the CLI's static imports. Every
 * module there costs each CLI call its load time, so the daemon's parts (fastify, the stores, the
 * network stack) and heavy packages (undici: ~80 ms) must stay behind a dynamic import. The
 * `vmm` command's definition lives in src/vmm (the stand-alone VMM process runs it too) and
 * loads the VMM itself only when run.
 */
import path from 'node:path';
import * as esbuild from 'esbuild';
import { describe, expect, it } from 'vitest';
import { REPO } from '../../fixtures/daemon.js';

async function staticGraph(): Promise<{ sources: string[]; packages: string[] }> {
  const r = await esbuild.build({
    entryPoints: [path.join(REPO, 'src', 'cli', 'main.ts')],
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    packages: 'external',
    write: false,
    metafile: true,
    outdir: '/out',
    logLevel: 'silent',
  });
  const entry = Object.entries(r.metafile.outputs).find(([, o]) => o.entryPoint !== undefined)![1];
  // chunks the entry imports statically load with it; dynamic ones only when a command asks
  const sources = new Set<string>();
  const packages = new Set<string>();
  const visit = (o: esbuild.Metafile['outputs'][string]) => {
    for (const i of Object.keys(o.inputs)) sources.add(i);
    for (const imp of o.imports) {
      if (imp.kind !== 'import-statement') continue;
      if (imp.external) packages.add(imp.path);
      else visit(Object.entries(r.metafile.outputs).find(([k]) => path.resolve('/', k) === path.resolve('/', imp.path))![1]);
    }
  };
  visit(entry);
  return { sources: [...sources].sort(), packages: [...packages].filter((p) => !p.startsWith('node:')).sort() };
}

describe('the CLI start path', () => {
  it("imports only commander and the CLI's own small modules", async () => {
    const g = await staticGraph();
    expect(g.packages).toEqual(['commander']);
    const outside = g.sources.filter(
      (s) =>
        !/^src\/(cli\/|errors\.ts$|api\/(version|stream-header|streaming|human-duration)\.ts$|runtime\/log-opts\.ts$|vmm\/command\.ts$)/.test(
          s,
        ),
    );
    expect(outside).toEqual([]);
  });
});
