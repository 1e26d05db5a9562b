/**
 * Daemon soak: the tvm daemon's resident memory and open descriptors before and after many
 * containers, so that a leak per container (an fd per copy, a listener per attach, a record
 * never dropped) shows as growth. Runs `docker run --rm busybox true` N times one after the
 * other, then M at once, against a real daemon on its own temp data root; reports RSS and fd
 * counts after each phase (after a settle and a GC-friendly pause, not a forced GC: this is
 * the daemon as users run it).
 *
 *   npx tsx bench/daemon-soak.bench.ts [sequential=200] [concurrent=50]
 */
import { readFileSync, readdirSync } from 'node:fs';
import { startDaemonWithBusybox, type TestDaemon } from '../test/fixtures/daemon.js';

const SEQ = Number(process.argv[2] ?? 200);
const CONC = Number(process.argv[3] ?? 50);

interface Sample {
  rssKiB: number;
  fds: number;
}

function sample(pid: number): Sample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
  return { rssKiB, fds: readdirSync(`/proc/${pid}/fd`).length };
}

async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 3000));
}

async function runOne(d: TestDaemon): Promise<void> {
  const r = await d.docker(['run', '--rm', 'busybox', 'true'], { timeout: 300_000 });
  if (r.exitCode !== 0) throw new Error(`docker run failed (${r.exitCode}): ${r.stderr}`);
}

async function main(): Promise<void> {
  const d = await startDaemonWithBusybox();
  try {
    const pid = d.pid()!;
    // warm-up: base disk built and mounted, code paths compiled
    for (let i = 0; i < 3; i++) await runOne(d);
    await settle();
    const before = sample(pid);
    const t0 = performance.now();
    for (let i = 0; i < SEQ; i++) await runOne(d);
    const seqMs = performance.now() - t0;
    await settle();
    const afterSeq = sample(pid);
    const t1 = performance.now();
    await Promise.all(Array.from({ length: CONC }, () => runOne(d)));
    const concMs = performance.now() - t1;
    await settle();
    const afterConc = sample(pid);
    const left = (await d.docker(['ps', '-aq'])).stdout.trim();
    const row = (what: string, s: Sample) => `${what.padEnd(34)} ${String(s.rssKiB).padStart(9)} KiB RSS  ${String(s.fds).padStart(5)} fds`;
    console.log(`tvm daemon soak (${SEQ} sequential, ${CONC} concurrent docker run --rm busybox true)`);
    console.log(row('before (after 3 warm-up runs)', before));
    console.log(row(`after ${SEQ} sequential (${(seqMs / 1000).toFixed(1)} s)`, afterSeq));
    console.log(row(`after ${CONC} concurrent (${(concMs / 1000).toFixed(1)} s)`, afterConc));
    console.log(
      `growth: ${afterConc.rssKiB - before.rssKiB} KiB RSS, ${afterConc.fds - before.fds} fds; containers left: ${left === '' ? 0 : left.split('\n').length}`,
    );
  } finally {
    await d.destroy();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
