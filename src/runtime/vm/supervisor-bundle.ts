/**
 * The VM supervisor as one JavaScript file. Run from the TypeScript sources, a supervisor spends
 * about half a second in Node's module loader and tsx's hooks before its first line (and its
 * poller thread as long again), on every `docker run --isolation=vm`; bundled with esbuild
 * (the bundler tsx itself uses) it starts in a fraction of that. The daemon bundles once at its
 * start, from the sources it runs, so the bundle is never older than the daemon. Packages stay
 * external and load from node_modules, which is why the bundle lives under
 * node_modules/.cache; named by its content hash and written by rename, so concurrent daemons
 * share it safely. Where it cannot be built (a read-only install) the sources run through tsx.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const SRC = path.resolve(here, '..', '..');
const REPO = path.resolve(SRC, '..');

export interface SupervisorBundle {
  /** the supervisor's entry file */
  main: string;
}

export async function buildSupervisorBundle(cacheRoot = path.join(REPO, 'node_modules', '.cache', 'tvm')): Promise<SupervisorBundle> {
  const esbuild = await import('esbuild');
  const r = await esbuild.build({
    entryPoints: {
      'supervisor-main': path.join(SRC, 'runtime', 'vm', 'supervisor-main.ts'),
      // NotifyPoller starts './notify-poller-worker.js' next to the running module
      'notify-poller-worker': path.join(SRC, 'vmm', 'devices', 'virtio', 'notify-poller-worker.ts'),
      // and the kvm backend's vCPU loop './vcpu-worker.js'
      'vcpu-worker': path.join(SRC, 'vmm', 'vcpu-worker.ts'),
    },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    write: false,
    outdir: '/out',
    logLevel: 'silent',
  });
  const hash = createHash('sha256');
  for (const f of r.outputFiles) hash.update(f.path).update(f.contents);
  const dir = path.join(cacheRoot, `vm-supervisor-${hash.digest('hex').slice(0, 16)}`);
  const main = path.join(dir, 'supervisor-main.js');
  if (existsSync(main)) return { main };
  await mkdir(cacheRoot, { recursive: true });
  const tmp = await mkdtemp(path.join(cacheRoot, '.tmp-'));
  try {
    for (const f of r.outputFiles) await writeFile(path.join(tmp, path.relative('/out', f.path)), f.contents);
    await rename(tmp, dir).catch((e: NodeJS.ErrnoException) => {
      // another daemon wrote the same bundle first
      if (e.code !== 'ENOTEMPTY' && e.code !== 'EEXIST') throw e;
    });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return { main };
}
