/**
 * What `--userns-remap` costs, side by side in one run:
 *  - start-to-exit of busybox `true` under container isolation, without and with a user
 *    namespace (the agent's extra steps: id maps, the overlay helper, chowned cgroups), and the
 *    reference: util-linux `unshare --user --map-root-user` + the same namespaces + `chroot`;
 *  - writing a base disk from the busybox layer, plain and id-shifted (the one extra disk per
 *    image that remapping needs).
 * Medians in ms, ratios against the reference / the plain disk.
 *
 *   npx tsx bench/userns.bench.ts [iterations]
 */
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { writeExt4FromLayers } from '../src/disks/ext4/writer.js';
import { BaseDiskCache } from '../src/disks/base-disk.js';
import { HostIsolation } from '../src/runtime/host/isolation.js';
import { busyboxRootfsEntries, packTar } from '../test/fixtures/rootfs.js';
import { AGENT, fakeImages, makeSpec, run, setup } from '../test/integration/runtime/host/harness.js';
import { median, timeMs } from './lib/stats.js';

const exec = promisify(execFile);
const N = Number(process.argv[2] ?? 10);
const maps = { uidMap: [{ containerID: 0, hostID: 200000, size: 65536 }], gidMap: [{ containerID: 0, hostID: 200000, size: 65536 }] };

async function main(): Promise<void> {
  execFileSync('sh', ['-c', 'command -v unshare && command -v chroot'], { stdio: 'pipe' });
  const env = await setup();
  chmodSync(env.root, 0o711);
  const tar = await packTar(busyboxRootfsEntries());
  const layers = () =>
    (async function* () {
      yield Readable.from([tar]);
    })();
  const { images, baseDisks } = fakeImages(env.disk);
  const shifted = new BaseDiskCache({ dataRoot: env.dataRoot, layerStreams: layers, idShift: maps });
  const iso = new HostIsolation({
    dataRoot: env.dataRoot,
    runRoot: env.runRoot,
    agentPath: AGENT,
    images,
    baseDisks,
    userns: { maps, baseDisks: shifted },
  });
  try {
    const plain: number[] = [];
    const userns: number[] = [];
    const reference: number[] = [];
    // warm-up: both base disks built and mounted once and kept mounted, as in production
    const warm = [makeSpec(env, ['true'], { usernsMode: 'host' as const }), makeSpec(env, ['true'])];
    for (const w of warm) await run(env, w, iso);
    const rootfs = path.join(env.runRoot, 'base', 'ab'.repeat(32));
    const once = async (over: object, into: number[]) => {
      const s = makeSpec(env, ['true'], over);
      await iso.create(s);
      into.push(
        await timeMs(async () => {
          await iso.start(s);
          await iso.wait(s);
        }),
      );
      await iso.remove(s);
    };
    for (let i = 0; i < N; i++) {
      // interleaved so that machine noise hits every side alike
      await once({ usernsMode: 'host' }, plain);
      await once({}, userns);
      reference.push(
        await timeMs(() =>
          exec('unshare', [
            '--user',
            '--map-root-user',
            '--fork',
            '--pid',
            '--mount',
            '--uts',
            '--ipc',
            '--net',
            '--mount-proc',
            'chroot',
            rootfs,
            '/bin/true',
          ]),
        ),
      );
    }
    for (const w of warm) await iso.remove(w);
    // one untimed write of each first (JIT, page cache)
    for (const o of [{}, { idShift: maps }]) {
      const out = path.join(env.root, 'bench-warm.ext4');
      await writeExt4FromLayers(layers(), out, { timestamp: 1, ...o });
      rmSync(out);
    }
    const diskPlain: number[] = [];
    const diskShifted: number[] = [];
    for (let i = 0; i < Math.max(5, N); i++) {
      const out = path.join(env.root, `bench-${i}.ext4`);
      diskPlain.push(await timeMs(() => writeExt4FromLayers(layers(), out, { timestamp: 1 })));
      rmSync(out);
      diskShifted.push(await timeMs(() => writeExt4FromLayers(layers(), out, { timestamp: 1, idShift: maps })));
      rmSync(out);
    }
    const ref = median(reference);
    console.log(`user namespaces, busybox \`true\`, ${N} runs each, medians (ms):`);
    const rows = [
      ['unshare --user --map-root-user + chroot (reference)', ref],
      ['tvm start -> exit, --userns=host', median(plain)],
      ['tvm start -> exit, --userns-remap', median(userns)],
    ] as const;
    for (const [name, ms] of rows) console.log(`  ${name.padEnd(52)} ${ms.toFixed(1).padStart(7)}  x${(ms / ref).toFixed(2)}`);
    console.log(`  remapped / host user namespace: x${(median(userns) / median(plain)).toFixed(2)}`);
    const dp = median(diskPlain);
    console.log(`busybox base disk write, ${diskPlain.length} runs each, medians (ms):`);
    console.log(`  ${'plain'.padEnd(52)} ${dp.toFixed(1).padStart(7)}  x1.00`);
    console.log(
      `  ${'id-shifted (idShift)'.padEnd(52)} ${median(diskShifted).toFixed(1).padStart(7)}  x${(median(diskShifted) / dp).toFixed(2)}`,
    );
  } finally {
    rmSync(env.root, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
