/**
 * Pull benchmark: a multi-layer image from a local docker-registry, pulled by our store
 * (tvm: download + verify + gunzip + diff-ID + tar checks, blobs fsynced, as docker pull
 * does) and by skopeo, alternating, N runs each:
 *   - `skopeo copy docker://... oci:DIR`: download + verify only (no decompression, no fsync);
 *   - `skopeo copy docker://... docker-archive:FILE`: also decompresses every layer and
 *     computes diff IDs, i.e. the same work as ours minus fsync.
 *
 *   npx tsx bench/pull.bench.ts [--runs 5] [--mb 120] [--layers 6]
 *
 * Prints wall min/median and CPU (user+sys) median per tool, and tvm/skopeo ratios (goal
 * <= 1.0x). On a shared machine CPU time is the steadier figure. Every tool starts after a
 * `sync` and the order rotates per run (see below).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { randomBytes, createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { gzipSync, constants as zc } from 'node:zlib';
import { Readable } from 'node:stream';
import { startRegistry } from '../test/fixtures/registry.js';
import { packTar, type TarEntry } from '../test/fixtures/rootfs.js';
import { RegistryClient } from '../src/images/registry.js';
import { Store } from '../src/images/store.js';
import { median } from './lib/stats.js';

const run = promisify(execFile);

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

const RUNS = arg('runs', 5);
const TOTAL_MB = arg('mb', 120);
const LAYERS = arg('layers', 6);
const SKOPEO = '/usr/bin/skopeo';

const sha = (b: Uint8Array) => 'sha256:' + createHash('sha256').update(b).digest('hex');

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

async function main(): Promise<void> {
  if (!existsSync(SKOPEO)) throw new Error(`missing ${SKOPEO}: apt-get install skopeo`);
  const work = mkdtempSync(path.join(os.tmpdir(), 'tvm-pull-bench-'));
  const reg = await startRegistry();
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

    type Tool = 'tvm' | 'skopeo-oci' | 'skopeo-archive';
    const wall: Record<Tool, number[]> = { tvm: [], 'skopeo-oci': [], 'skopeo-archive': [] };
    const cpu: Record<Tool, number[]> = { tvm: [], 'skopeo-oci': [], 'skopeo-archive': [] };
    const skopeo = async (dest: string): Promise<{ wallMs: number; cpuMs: number }> => {
      const t = process.hrtime.bigint();
      // GNU time reports the child's CPU seconds on stderr
      const { stderr } = await run('/usr/bin/time', ['-f', 'CPU %U %S', SKOPEO, '--insecure-policy', 'copy', '-q', '--src-tls-verify=false', `docker://${ref}`, dest]);
      const wallMs = Number(process.hrtime.bigint() - t) / 1e6;
      const m = /CPU ([\d.]+) ([\d.]+)/.exec(stderr);
      if (!m) throw new Error(`no CPU figures from /usr/bin/time: ${stderr}`);
      return { wallMs, cpuMs: (Number(m[1]) + Number(m[2])) * 1000 };
    };
    // Each tool starts with no dirty pages from the one before: skopeo does not fsync, and its
    // 61-121 MB would otherwise be written back during (and be billed to) the next tool's run.
    // The order rotates per run, so no tool always follows the same one.
    const settle = () => run('/bin/sync');
    const tvmPull = async (r: number): Promise<{ wallMs: number; cpuMs: number }> => {
      const ours = path.join(work, `tvm-${r}`);
      const t = process.hrtime.bigint();
      const c = process.cpuUsage();
      const rec = await new Store(ours).pull(ref);
      const u = process.cpuUsage(c);
      const out = { wallMs: Number(process.hrtime.bigint() - t) / 1e6, cpuMs: (u.user + u.system) / 1000 };
      if (rec.diffIds.length !== LAYERS) throw new Error('pull produced the wrong image');
      rmSync(ours, { recursive: true, force: true });
      return out;
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
    const tools: [Tool, (r: number) => Promise<{ wallMs: number; cpuMs: number }>][] = [
      ['tvm', tvmPull],
      ['skopeo-oci', skopeoOci],
      ['skopeo-archive', skopeoArchive],
    ];
    // run 0 is a warm-up so every tool reads the registry's files from the page cache
    for (let r = 0; r <= RUNS; r++) {
      const res = {} as Record<Tool, { wallMs: number; cpuMs: number }>;
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
      console.log(`run ${r}/${RUNS}: ` + (Object.keys(wall) as Tool[]).map((k) => `${k} ${res[k].wallMs.toFixed(0)} ms (cpu ${res[k].cpuMs.toFixed(0)})`).join(', '));
    }
    console.log(`\npull of ${LAYERS} layers, ${(compressed / 1e6).toFixed(1)} MB compressed / ${(tars.reduce((s, t) => s + t.length, 0) / 1e6).toFixed(1)} MB uncompressed, ${RUNS} runs, ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(1)}`);
    for (const k of Object.keys(wall) as Tool[]) {
      console.log(`${k.padEnd(15)} wall min ${Math.min(...wall[k]).toFixed(0).padStart(6)} ms  median ${median(wall[k]).toFixed(0).padStart(6)} ms   cpu median ${median(cpu[k]).toFixed(0).padStart(6)} ms`);
    }
    for (const k of ['skopeo-oci', 'skopeo-archive'] as Tool[]) {
      console.log(
        `ratio tvm/${k}: wall min ${(Math.min(...wall.tvm) / Math.min(...wall[k])).toFixed(2)}x, wall median ${(median(wall.tvm) / median(wall[k])).toFixed(2)}x, cpu median ${(median(cpu.tvm) / median(cpu[k])).toFixed(2)}x`,
      );
    }
  } finally {
    await reg.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
