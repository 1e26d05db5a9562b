/**
 * `docker diff` and the cost of `--storage-opt size=`, through the docker CLI: tvm daemon
 * (container isolation) versus Debian's docker.io dockerd (overlay2), in one run, alternating.
 *
 *  - diff: `docker diff` of a stopped container that wrote FILES files in 20 directories, changed
 *    /etc/passwd and deleted /bin/cat (both daemons must give the same list);
 *  - create: `docker create` + `docker rm` of a busybox container; tvm also with
 *    `--storage-opt size=1G` (a loop-mounted ext4 writable layer made per container). dockerd
 *    cannot size a layer here (overlay2 needs xfs with pquota), so its plain create is the
 *    reference for both.
 *
 *   npx tsx bench/diff-storage.bench.ts [--runs N] [--files N]
 *
 * Needs root, /usr/local/bin/docker (CLI), /usr/sbin/dockerd.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTestDaemon, missingRealParts, DOCKER } from '../test/fixtures/daemon.js';
import { busyboxDockerArchive } from '../test/fixtures/fake-images.js';
import { DOCKERD, requireTools, startReferenceDockerd, timedDocker, type ReferenceDockerd } from './lib/reference-dockerd.js';
import { median } from './lib/stats.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? Number(args[i + 1]) : dflt;
};
const RUNS = opt('runs', 10);
const FILES = opt('files', 2000);

requireTools([
  [DOCKER, 'docker-ce-cli (the docker CLI)'],
  [DOCKERD, 'docker.io'],
]);
const missing = missingRealParts();
if (missing.length > 0) throw new Error(`tvm parts missing: ${missing.join(', ')}`);

const work = mkdtempSync(path.join(tmpdir(), 'tvm-bench-diff-'));

const docker = (host: string, cmd: string[], input?: Buffer) => timedDocker(host, path.join(work, 'cfg'), cmd, input);
function must(name: string, host: string, cmd: string[]): { ms: number; out: string } {
  const r = docker(host, cmd);
  if (r.code !== 0) throw new Error(`${name}: docker ${cmd.join(' ')} exited ${r.code}: ${r.err}`);
  return r;
}

const tvm = await startTestDaemon();
let dockerd: ReferenceDockerd | undefined;
try {
  dockerd = await startReferenceDockerd(work, 'tvmbenchdiff');
  writeFileSync(path.join(work, 'busybox.tar'), await busyboxDockerArchive());
  const hosts = { tvm: tvm.host, docker: dockerd.host } as const;
  const script = `for d in $(seq 1 20); do mkdir -p /data/d$d; done; i=0; while [ $i -lt ${FILES} ]; do echo $i > /data/d$((i % 20 + 1))/f$i; i=$((i+1)); done; echo x >> /etc/passwd; rm /bin/cat`;
  const lists: Record<string, string> = {};
  for (const [name, host] of Object.entries(hosts)) {
    must(name, host, ['load', '-i', path.join(work, 'busybox.tar')]);
    must(name, host, ['run', '--name', 'changed', 'busybox', 'sh', '-c', script]);
    lists[name] = must(name, host, ['diff', 'changed']).out.split('\n').sort().join('\n');
  }
  if (lists.tvm !== lists.docker) throw new Error('tvm and dockerd disagree on docker diff');
  const lines = lists.tvm!.split('\n').length;

  const t = {
    tvmDiff: [] as number[],
    dockerDiff: [] as number[],
    tvmCreate: [] as number[],
    tvmCreateSized: [] as number[],
    dockerCreate: [] as number[],
  };
  for (let i = 0; i < RUNS + 1; i++) {
    const keep = i > 0; // the first round warms up
    const td = must('tvm', hosts.tvm, ['diff', 'changed']).ms;
    const dd = must('docker', hosts.docker, ['diff', 'changed']).ms;
    const create = (host: string, name: string, extra: string[]) => {
      const c = must(name, host, ['create', ...extra, 'busybox', 'true']);
      const r = must(name, host, ['rm', c.out.trim()]);
      return c.ms + r.ms;
    };
    const tc = create(hosts.tvm, 'tvm', []);
    const ts = create(hosts.tvm, 'tvm', ['--storage-opt', 'size=1G']);
    const dc = create(hosts.docker, 'docker', []);
    if (keep) {
      t.tvmDiff.push(td);
      t.dockerDiff.push(dd);
      t.tvmCreate.push(tc);
      t.tvmCreateSized.push(ts);
      t.dockerCreate.push(dc);
    }
  }
  const f = (x: number) => `${x.toFixed(0).padStart(6)} ms`;
  const m = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, median(v)])) as Record<keyof typeof t, number>;
  process.stdout.write(`medians of ${RUNS} runs (after 1 warm-up), alternating tvm / dockerd\n`);
  process.stdout.write(
    `docker diff (${lines} changes)        tvm ${f(m.tvmDiff)}   dockerd ${f(m.dockerDiff)}   ratio ${(m.tvmDiff / m.dockerDiff).toFixed(2)}x\n`,
  );
  process.stdout.write(
    `create + rm                         tvm ${f(m.tvmCreate)}   dockerd ${f(m.dockerCreate)}   ratio ${(m.tvmCreate / m.dockerCreate).toFixed(2)}x\n`,
  );
  process.stdout.write(
    `create --storage-opt size=1G + rm   tvm ${f(m.tvmCreateSized)}   dockerd ${f(m.dockerCreate)} (no size)   ratio ${(m.tvmCreateSized / m.dockerCreate).toFixed(2)}x\n`,
  );
} finally {
  await dockerd?.stop();
  await tvm.destroy();
  spawnSync('umount', ['-R', path.join(work, 'docker-data')], { stdio: 'ignore' });
  rmSync(work, { recursive: true, force: true });
}
