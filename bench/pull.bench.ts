/**
 * Pull benchmark: a multi-layer image from a local docker-registry, pulled the way users pull,
 * N runs each, alternating, after a warm-up run:
 *   - tvm: `docker pull` (the docker CLI) against `tvm daemon` (download + verify + gunzip +
 *     diff ID + tar checks, blobs fsynced), then `docker rmi` outside the timing;
 *   - tvm-engine: the same pull without the CLI and the API: Store.pull in a long-lived
 *     process of its own (lib/pull-server.ts), timed there;
 *   - dockerd: the same against Debian's docker.io dockerd 20.10 (overlay2 extracts layers);
 *   - `skopeo copy docker://... oci:DIR`: download + verify only (no decompression, no fsync):
 *     the reference (goal: tvm <= 1.0x);
 *   - `skopeo copy docker://... docker-archive:FILE`: also decompresses every layer and
 *     computes diff IDs, i.e. the same work as ours minus fsync.
 *
 *   npx tsx bench/pull.bench.ts [--runs 5] [--mb 120] [--layers 6]
 *
 * Prints wall min/median and CPU (user+sys) median per tool, and ratios to tvm. CPU is the
 * command's own plus, for the two daemons, the daemon process's (from /proc/PID/stat). On a
 * shared machine CPU time is the steadier figure. Every tool starts after a sync(2) and the
 * order rotates per run.
 */
import { execFile, fork, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { sha256 as sha } from '../test/fixtures/hash.js';
import os from 'node:os';
import path from 'node:path';
import { gzipSync, constants as zc } from 'node:zlib';
import { Readable } from 'node:stream';
import { startRegistry } from '../test/fixtures/registry.js';
import { packTar, type TarEntry } from '../test/fixtures/rootfs.js';
import { startTestDaemon, missingRealParts, DOCKER } from '../test/fixtures/daemon.js';
import { RegistryClient } from '../src/images/registry.js';
import { median } from './lib/stats.js';
import { syncFilesystems } from './lib/sync.js';
import { DOCKERD, requireTools, startReferenceDockerd, type ReferenceDockerd } from './lib/reference-dockerd.js';

const run = promisify(execFile);

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

const RUNS = arg('runs', 5);
const TOTAL_MB = arg('mb', 120);
const LAYERS = arg('layers', 6);
const SKOPEO = '/usr/bin/skopeo';
const TIME = '/usr/bin/time';
const CLK_TCK = 100;

/** A layer of files whose content is half random, half text: compresses about 2:1 like real layers. */
async function makeLayer(bytes: number, seed: number): Promise<Buffer> {
  const entries: TarEntry[] = [{ name: `layer${seed}/`, type: 'directory' }];
  const fileSize = 256 * 1024;
  const text = Buffer.from(`line of layer ${seed} text that compresses well enough\n`.repeat(fileSize / 64));
  for (let i = 0; i * fileSize < bytes; i++) {
    const content = Buffer.concat([randomBytes(fileSize / 2), text.subarray(0, fileSize / 2)]);
    entries.push({ name: `layer${seed}/file${i}.bin`, content });
  }
  return packTar(entries);
}

/** CPU milliseconds (user + sys, all threads, exited ones included) a process has used. */
function processCpuMs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  // fields after the command name: state is 3rd, utime 14th, stime 15th of the whole line
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}

interface Sample {
  wallMs: number;
  cpuMs: number;
}

/** Runs a command under GNU time: wall time here, CPU seconds from time's report (plus a daemon's). */
async function timed(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
  daemonPid?: number,
): Promise<Sample & { out: string }> {
  const d0 = processCpuMs(daemonPid);
  const t = process.hrtime.bigint();
  const { stdout, stderr } = await run(TIME, ['-f', 'CPU %U %S', cmd, ...args], { env, maxBuffer: 64 << 20 });
  const wallMs = Number(process.hrtime.bigint() - t) / 1e6;
  const m = /CPU ([\d.]+) ([\d.]+)\s*$/.exec(stderr);
  if (!m) throw new Error(`no CPU figures from ${TIME}: ${stderr}`);
  return { wallMs, cpuMs: (Number(m[1]) + Number(m[2])) * 1000 + processCpuMs(daemonPid) - d0, out: stdout };
}

async function main(): Promise<void> {
  if (!existsSync(SKOPEO)) throw new Error(`missing ${SKOPEO}: apt-get install skopeo`);
  const work = mkdtempSync(path.join(os.tmpdir(), 'tvm-pull-bench-'));
  const reg = await startRegistry();
  const daemons: (() => Promise<void>)[] = [];
  try {
    process.stdout.write(`building ${LAYERS} layers, ~${TOTAL_MB} MB uncompressed ... `);
    const tars: Buffer[] = [];
    for (let i = 0; i < LAYERS; i++) tars.push(await makeLayer((TOTAL_MB * 1e6) / LAYERS, i));
    const blobs = tars.map((t) => gzipSync(t, { level: zc.Z_BEST_SPEED }));
    const compressed = blobs.reduce((s, b) => s + b.length, 0);
    console.log(`${(compressed / 1e6).toFixed(1)} MB compressed`);
    const config = Buffer.from(
      JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'] }, rootfs: { type: 'layers', diff_ids: tars.map(sha) } }),
    );
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
        config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: sha(config), size: config.length },
        layers: blobs.map((b) => ({ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: sha(b), size: b.length })),
      }),
    );
    const client = new RegistryClient(reg.host);
    for (const b of [...blobs, config]) await client.pushBlob('bench/img', { digest: sha(b), size: b.length }, () => Readable.from([b]));
    await client.putManifest('bench/img', 'v1', 'application/vnd.docker.distribution.manifest.v2+json', manifest);
    await client.close();
    const ref = `${reg.host}/bench/img:v1`;
    const uncompressed = tars.reduce((s, t) => s + t.length, 0);
    // the layers live in the registry now: this process forks for every tool, and a smaller
    // heap makes that cheaper and steadier for all of them
    tars.length = 0;
    blobs.length = 0;

    requireTools([
      [DOCKER, 'docker-ce-cli (the docker CLI)'],
      [DOCKERD, 'docker.io'],
      [TIME, 'time'],
    ]);
    const missing = missingRealParts();
    if (missing.length > 0) throw new Error(`tvm parts missing: ${missing.join(', ')}`);
    const tvmd = await startTestDaemon();
    daemons.push(() => tvmd.destroy());
    const dockerd: ReferenceDockerd = await startReferenceDockerd(work, 'tvmpullbench');
    daemons.push(() => dockerd.stop());
    const dockerdPid = Number(readFileSync(path.join(work, 'docker.pid'), 'utf8'));

    const server: ChildProcess = fork(path.join(import.meta.dirname, 'lib', 'pull-server.ts'), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    daemons.push(async () => void server.kill());
    const fromServer = () =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const exited = (code: number | null) => reject(new Error(`pull server exited (${code})`));
        server.once('exit', exited);
        server.once('message', (m) => {
          server.off('exit', exited);
          resolve(m as Record<string, unknown>);
        });
      });
    await fromServer();
    const enginePull = async (r: number): Promise<Sample> => {
      const answer = fromServer();
      server.send({ ref, root: path.join(work, `engine-${r}`) });
      const m = await answer;
      if (typeof m.error === 'string') throw new Error(`tvm-engine: ${m.error}`);
      return { wallMs: m.wallMs as number, cpuMs: m.cpuMs as number };
    };

    type Tool = 'tvm' | 'tvm-engine' | 'dockerd' | 'skopeo-oci' | 'skopeo-archive';
    const names: Tool[] = ['tvm', 'tvm-engine', 'dockerd', 'skopeo-oci', 'skopeo-archive'];
    const wall = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<Tool, number[]>;
    const cpu = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<Tool, number[]>;
    const skopeo = (dest: string) => timed(SKOPEO, ['--insecure-policy', 'copy', '-q', '--src-tls-verify=false', `docker://${ref}`, dest]);
    // Each tool starts with no dirty pages from the one before: skopeo does not fsync, and its
    // 61-121 MB would otherwise be written back during (and be billed to) the next tool's run.
    // The order rotates per run, so no tool always follows the same one. sync runs in-process
    // (lib/sync.ts), which is tidier; neither daemon is forked by it either way.
    const settle = async () => syncFilesystems();
    const dockerPull = async (host: string, pid: number | undefined, name: string): Promise<Sample> => {
      const env = { ...process.env, DOCKER_HOST: host, DOCKER_CONFIG: path.join(work, 'cfg') };
      const res = await timed(DOCKER, ['pull', ref], env, pid);
      const complete = res.out.split('\n').filter((l) => l.includes('Pull complete')).length;
      // the docker CLI prints the layer lines only on a terminal; its summary line suffices
      if (!res.out.includes(`Downloaded newer image for ${ref}`) && complete !== LAYERS)
        throw new Error(`${name}: docker pull did not download the image:\n${res.out}`);
      await run(DOCKER, ['rmi', ref], { env });
      return res;
    };
    const skopeoOci = async (r: number) => {
      const dir = path.join(work, `oci-${r}`);
      const out = await skopeo(`oci:${dir}:v1`);
      rmSync(dir, { recursive: true, force: true });
      return out;
    };
    const skopeoArchive = async (r: number) => {
      const file = path.join(work, `archive-${r}.tar`);
      const out = await skopeo(`docker-archive:${file}:bench/img:v1`);
      rmSync(file, { force: true });
      return out;
    };
    const tools: [Tool, (r: number) => Promise<Sample>][] = [
      ['tvm', () => dockerPull(tvmd.host, tvmd.pid(), 'tvm')],
      ['tvm-engine', enginePull],
      ['dockerd', () => dockerPull(dockerd.host, dockerdPid, 'dockerd')],
      ['skopeo-oci', skopeoOci],
      ['skopeo-archive', skopeoArchive],
    ];
    // run 0 is a warm-up so every tool reads the registry's files from the page cache
    for (let r = 0; r <= RUNS; r++) {
      const res = {} as Record<Tool, Sample>;
      for (let k = 0; k < tools.length; k++) {
        const [name, fn] = tools[(k + r) % tools.length]!;
        await settle();
        res[name] = await fn(r);
      }
      if (r === 0) continue;
      for (const k of Object.keys(res) as Tool[]) {
        wall[k].push(res[k].wallMs);
        cpu[k].push(res[k].cpuMs);
      }
      console.log(
        `run ${r}/${RUNS}: ` +
          (Object.keys(wall) as Tool[]).map((k) => `${k} ${res[k].wallMs.toFixed(0)} ms (cpu ${res[k].cpuMs.toFixed(0)})`).join(', '),
      );
    }
    console.log(
      `\npull of ${LAYERS} layers, ${(compressed / 1e6).toFixed(1)} MB compressed / ${(uncompressed / 1e6).toFixed(1)} MB uncompressed, ${RUNS} runs, ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(1)}`,
    );
    for (const k of Object.keys(wall) as Tool[]) {
      console.log(
        `${k.padEnd(15)} wall min ${Math.min(...wall[k])
          .toFixed(0)
          .padStart(6)} ms  median ${median(wall[k]).toFixed(0).padStart(6)} ms   cpu median ${median(cpu[k]).toFixed(0).padStart(6)} ms`,
      );
    }
    for (const ours of ['tvm', 'tvm-engine'] as Tool[]) {
      for (const k of ['skopeo-oci', 'skopeo-archive', 'dockerd'] as Tool[]) {
        console.log(
          `ratio ${ours}/${k}: wall min ${(Math.min(...wall[ours]) / Math.min(...wall[k])).toFixed(2)}x, wall median ${(median(wall[ours]) / median(wall[k])).toFixed(2)}x, cpu median ${(median(cpu[ours]) / median(cpu[k])).toFixed(2)}x`,
        );
      }
    }
  } finally {
    // teardown: a daemon that will not stop must not hide the benchmark's own error
    for (const stop of daemons.reverse()) await stop().catch(() => {});
    await reg.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
