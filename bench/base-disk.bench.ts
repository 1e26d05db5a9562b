/**
 * Base disk build time: our streaming ext4 writer (layer tars -> disk, one pass, no root) versus
 * the usual way, `tar -x` of every layer into a directory + `mke2fs -t ext4 -d dir`, on the same
 * layers and the same disk size, in one run. Reports times and the ratio (goal: ours <= 1.0x).
 *
 *   npx tsx bench/base-disk.bench.ts [--rounds N] [--dirs 'usr/include;usr/lib/python3.11,usr/sbin']
 *
 * (';' separates layers, ',' directories within a layer). Rounds alternate ours / reference so
 * load from other processes hits both; median and best are reported.
 *
 * The layers are tars of directories of this machine (default ~200 MB of many small files),
 * split into three layers. Both outputs are checked with e2fsck -fn (not timed).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { writeExt4FromLayers } from '../src/disks/ext4/writer.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : dflt;
};
const rounds = Number(opt('rounds', '5'));
const layerDirs = opt('dirs', 'usr/include;usr/lib/python3.11;usr/sbin,usr/share/perl5,usr/lib/x86_64-linux-gnu/perl-base')
  .split(';')
  .map((l) => l.split(',').filter((d) => existsSync(path.join('/', d))));

for (const tool of ['tar', 'mke2fs', 'e2fsck']) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
    throw new Error(`missing tool ${tool}: apt-get install ${tool === 'tar' ? 'tar' : 'e2fsprogs'}`);
}

const work = mkdtempSync(path.join(tmpdir(), 'tvm-bench-base-'));
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

try {
  // inputs (not timed)
  const layers: string[] = [];
  layerDirs.forEach((dirs, i) => {
    const out = path.join(work, `layer${i}.tar`);
    execFileSync('tar', ['--format=pax', '-C', '/', '-cf', out, ...dirs]);
    layers.push(out);
  });
  const inputBytes = layers.reduce((n, l) => n + statSync(l).size, 0);
  const files = layers.reduce((n, l) => n + Number(execFileSync('sh', ['-c', `tar -tf ${l} | wc -l`], { encoding: 'utf8' }).trim()), 0);
  console.log(`input: ${layers.length} layers, ${(inputBytes / 2 ** 20).toFixed(1)} MiB of tar, ${files} entries`);

  const ours: number[] = [];
  const ref: number[] = [];
  let sizeBytes = 0;
  for (let r = 0; r < rounds; r++) {
    // ours
    const img = path.join(work, 'ours.ext4');
    rmSync(img, { force: true });
    let t0 = process.hrtime.bigint();
    const stats = await writeExt4FromLayers(
      (async function* (): AsyncGenerator<Readable> {
        for (const l of layers) yield createReadStream(l, { highWaterMark: 1 << 20 });
      })(),
      img,
      // as BaseDiskCache does: the UUID comes from the image ID, so no content hashing
      { uuid: '5d1b0a3e-0000-8000-8000-000000000001' },
    );
    ours.push(ms(t0));
    sizeBytes = stats.sizeBytes;

    // reference: extract every layer, then mke2fs -d, same size
    const root = path.join(work, 'rootfs');
    const refImg = path.join(work, 'ref.ext4');
    rmSync(root, { recursive: true, force: true });
    rmSync(refImg, { force: true });
    mkdirSync(root);
    t0 = process.hrtime.bigint();
    for (const l of layers) execFileSync('tar', ['-x', '-f', l, '-C', root]);
    execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', root, refImg, `${sizeBytes / 1024}k`]);
    ref.push(ms(t0));

    if (r === 0) {
      for (const i of [img, refImg]) {
        const c = spawnSync('e2fsck', ['-fn', i], { encoding: 'utf8' });
        if (c.status !== 0) throw new Error(`e2fsck -fn ${i} failed:\n${c.stdout}${c.stderr}`);
      }
      console.log(
        `disk: ${(sizeBytes / 2 ** 30).toFixed(2)} GiB virtual; ours ${(statSync(img).blocks / 2048).toFixed(1)} MiB allocated, ` +
          `mke2fs ${(statSync(refImg).blocks / 2048).toFixed(1)} MiB allocated; both e2fsck-clean`,
      );
    }
    console.log(`round ${r + 1}: ours ${ours[r]!.toFixed(0)} ms, tar -x + mke2fs -d ${ref[r]!.toFixed(0)} ms`);
    rmSync(root, { recursive: true, force: true });
  }
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  const best = (a: number[]) => Math.min(...a);
  const mib = inputBytes / 2 ** 20;
  console.log(
    `\nmedian of ${rounds}: ours ${median(ours).toFixed(0)} ms (${(mib / (median(ours) / 1000)).toFixed(0)} MiB/s), tar -x + mke2fs -d ${median(ref).toFixed(0)} ms`,
  );
  console.log(
    `best of ${rounds}:   ours ${best(ours).toFixed(0)} ms (${(mib / (best(ours) / 1000)).toFixed(0)} MiB/s), tar -x + mke2fs -d ${best(ref).toFixed(0)} ms`,
  );
  console.log(
    `ratio ours / reference: median ${(median(ours) / median(ref)).toFixed(2)}x, best ${(best(ours) / best(ref)).toFixed(2)}x (goal <= 1.00x)`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
