/**
 * Container isolation start-to-exit latency, side by side with the reference: util-linux
 * `unshare` + `chroot` (new pid/mount/uts/ipc/net namespaces, /proc mounted, no cgroup, no
 * overlay, no seccomp, no supervisor) on the same busybox root. Reported as medians and ratios.
 *
 *   npx tsx bench/host-container.bench.ts [iterations]
 */
import { execFileSync, execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { makeSpec, run, setup } from '../test/integration/runtime/host/harness.js';
import { median, timeMs } from './lib/stats.js';

const exec = promisify(execFile);
const N = Number(process.argv[2] ?? 20);

async function main(): Promise<void> {
  execFileSync('sh', ['-c', 'command -v unshare && command -v chroot'], { stdio: 'pipe' });
  const env = await setup();
  try {
    const lifecycle: number[] = [];
    const startToExit: number[] = [];
    const reference: number[] = [];
    // warm-up: mounts the base disk once (shared by every container, as in production)
    const warm = makeSpec(env, ['true']);
    await run(env, warm);
    const rootfs = path.join(env.runRoot, 'base', 'ab'.repeat(32));
    for (let i = 0; i < N; i++) {
      // interleaved so that machine noise hits both sides alike
      const s = makeSpec(env, ['true']);
      lifecycle.push(
        await timeMs(async () => {
          await env.iso.create(s);
          startToExit.push(
            await timeMs(async () => {
              await env.iso.start(s);
              await env.iso.wait(s);
            }),
          );
          await env.iso.remove(s);
        }),
      );
      reference.push(
        await timeMs(() =>
          exec('unshare', ['--fork', '--pid', '--mount', '--uts', '--ipc', '--net', '--mount-proc', 'chroot', rootfs, '/bin/true']),
        ),
      );
    }
    await env.iso.remove(warm);
    const ref = median(reference);
    const rows = [
      ['unshare + chroot (reference)', ref],
      ['tvm start -> exit (supervisor, cgroups, overlay, seccomp)', median(startToExit)],
      ['tvm create + start + wait + remove', median(lifecycle)],
    ] as const;
    console.log(`container isolation, busybox \`true\`, ${N} runs each, medians (ms):`);
    for (const [name, ms] of rows) console.log(`  ${name.padEnd(58)} ${ms.toFixed(1).padStart(7)}  x${(ms / ref).toFixed(2)}`);
  } finally {
    rmSync(env.root, { recursive: true, force: true });
  }
}

await main();
