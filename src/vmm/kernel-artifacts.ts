/**
 * The guest kernel's build artifacts: where kernels/build.sh caches them, the cache key, and
 * finding or building the kernel for the VMM.
 *
 * The key is computed here exactly as build.sh computes it (test/integration/kernel pins that
 * they agree): sha256 over a "key material" text with one line for the source tarball and one
 * per input file under kernels/. A kernel built from other inputs is never returned as current.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { readFile, readdir, readlink, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { NotFoundError, TvmError, FormatError } from '../errors.js';

export interface KernelArtifacts {
  key: string;
  dir: string;
  /** ELF image with a PVH note: what the VMM loads. */
  vmlinux: string;
  bzImage: string;
  systemMap: string;
  /** The resolved .config the kernel was built with. */
  config: string;
}

export const DEFAULT_KERNEL_SOURCE = '/usr/src/linux-source-6.1.tar.xz';

/** Files of kernels/ that decide the build, in the order build.sh hashes them (patches sorted). */
const FIXED_INPUTS = ['build.sh', 'check-config.sh', 'config-fragment'];

/** `${TVM_CACHE:-$HOME/.cache/tvm}/kernels`, as in build.sh. */
export function kernelCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.TVM_CACHE || path.join(env.HOME || homedir(), '.cache', 'tvm'), 'kernels');
}

export function kernelSourceTarball(env: NodeJS.ProcessEnv = process.env): string {
  return env.TVM_KERNEL_SOURCE || DEFAULT_KERNEL_SOURCE;
}

/** The repository's kernels/ directory, found upward from this module (works from src/ and dist/). */
export function kernelsDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'kernels', 'build.sh'))) return path.join(dir, 'kernels');
    const up = path.dirname(dir);
    if (up === dir) throw new NotFoundError('kernels/build.sh not found above ' + fileURLToPath(import.meta.url), 'ERR_KERNEL_SOURCES');
    dir = up;
  }
}

const tarballHashes = new Map<string, { size: number; mtimeMs: number; sha256: string }>();

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** The tarball is 130+ MB: hash it once per process unless it changes. */
async function tarballSha256(tarball: string): Promise<string> {
  let st;
  try {
    st = await stat(tarball);
  } catch {
    throw new NotFoundError(`kernel source ${tarball} not found (apt-get install linux-source-6.1)`, 'ERR_KERNEL_SOURCE');
  }
  const cached = tarballHashes.get(tarball);
  if (cached && cached.size === st.size && cached.mtimeMs === st.mtimeMs) return cached.sha256;
  const sha256 = await sha256File(tarball);
  tarballHashes.set(tarball, { size: st.size, mtimeMs: st.mtimeMs, sha256 });
  return sha256;
}

/** The input files relative to kernels/: fixed files, then patches/*.patch in byte order. */
export async function kernelInputs(dir = kernelsDir()): Promise<string[]> {
  let patches: string[] = [];
  try {
    patches = (await readdir(path.join(dir, 'patches'))).filter((f) => f.endsWith('.patch'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  patches.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return [...FIXED_INPUTS, ...patches.map((p) => `patches/${p}`)];
}

/** The text build.sh hashes into the key (also stored as <key>/key-material). */
export async function kernelKeyMaterial(opts: { dir?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  const dir = opts.dir ?? kernelsDir();
  const tarball = kernelSourceTarball(opts.env);
  const lines = [`source ${path.basename(tarball)} ${await tarballSha256(tarball)}`];
  for (const f of await kernelInputs(dir)) {
    lines.push(
      `kernels/${f} ${createHash('sha256')
        .update(await readFile(path.join(dir, f)))
        .digest('hex')}`,
    );
  }
  return lines.join('\n') + '\n';
}

export async function kernelKey(opts: { dir?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return createHash('sha256')
    .update(await kernelKeyMaterial(opts))
    .digest('hex');
}

function artifactsIn(dir: string, key: string): KernelArtifacts {
  return {
    key,
    dir,
    vmlinux: path.join(dir, 'vmlinux'),
    bzImage: path.join(dir, 'bzImage'),
    systemMap: path.join(dir, 'System.map'),
    config: path.join(dir, 'config'),
  };
}

/**
 * The kernel built from the current inputs. Throws NotFoundError if it has not been built.
 * Without the source tarball (an installed tvm) the key cannot be computed; then the last
 * build (`current`) is used.
 */
export async function findKernel(env: NodeJS.ProcessEnv = process.env): Promise<KernelArtifacts> {
  const cache = kernelCacheDir(env);
  let key: string;
  if (existsSync(kernelSourceTarball(env))) {
    key = await kernelKey({ env });
  } else {
    const current = path.join(cache, 'current');
    if (!existsSync(path.join(current, 'vmlinux'))) {
      throw new NotFoundError('guest kernel not built: run tvm kernel build', 'ERR_KERNEL_NOT_BUILT');
    }
    key = path.basename(await readlink(current));
  }
  const a = artifactsIn(path.join(cache, key), key);
  for (const f of [a.vmlinux, a.systemMap, a.config]) {
    if (!existsSync(f)) throw new NotFoundError('guest kernel not built: run tvm kernel build', 'ERR_KERNEL_NOT_BUILT');
  }
  return a;
}

export interface BuildKernelOptions {
  /** Each progress line of the build (default: written to stderr). */
  onProgress?: (line: string) => void;
  /** make -j (default: build.sh uses nproc). */
  jobs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Runs kernels/build.sh (instant when cached) and returns the artifacts. */
export async function buildKernel(opts: BuildKernelOptions = {}): Promise<KernelArtifacts> {
  const env = { ...(opts.env ?? process.env) };
  if (opts.jobs !== undefined) env.TVM_KERNEL_JOBS = String(opts.jobs);
  const progress = opts.onProgress ?? ((l: string) => process.stderr.write(l + '\n'));
  const proc = execa('bash', [path.join(kernelsDir(), 'build.sh')], {
    env,
    extendEnv: false,
    reject: false,
    stderr: 'pipe',
    stdout: 'pipe',
    buffer: { stderr: false },
  });
  let tail: string[] = [];
  let pending = '';
  proc.stderr?.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const l of lines) {
      progress(l);
      tail = [...tail.slice(-19), l];
    }
  });
  const r = await proc;
  if (pending) {
    progress(pending);
    tail.push(pending);
  }
  if (r.exitCode !== 0) {
    throw new TvmError('ERR_KERNEL_BUILD', `guest kernel build failed (exit ${r.exitCode}):\n${tail.join('\n')}`);
  }
  const dir = String(r.stdout).trim().split('\n').pop() ?? '';
  const key = path.basename(dir);
  if (!/^[0-9a-f]{64}$/.test(key)) throw new TvmError('ERR_KERNEL_BUILD', `kernels/build.sh printed no artifact directory (got "${dir}")`);
  return artifactsIn(dir, key);
}

/** Address of a symbol in a System.map ("ffffffff81a00000 T entry_SYSCALL_64"). */
export async function systemMapSymbol(systemMap: string, name: string): Promise<bigint> {
  const text = await readFile(systemMap, 'utf8');
  for (const line of text.split('\n')) {
    const parts = line.split(' ');
    if (parts.length === 3 && parts[2] === name) {
      if (!/^[0-9a-f]{16}$/.test(parts[0]!)) throw new FormatError(`${systemMap}: bad address for ${name}: ${parts[0]}`);
      return BigInt('0x' + parts[0]);
    }
  }
  throw new NotFoundError(`symbol ${name} not in ${systemMap}`, 'ERR_KERNEL_SYMBOL');
}

/** A kernel .config as option -> value; "is not set" lines map to "n". */
export function parseKernelConfig(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const set = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (set) m.set(set[1]!, set[2]!);
    const unset = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/.exec(line);
    if (unset) m.set(unset[1]!, 'n');
  }
  return m;
}
