/**
 * The agent's cgroup v2 code, for real: one boot of our guest kernel under QEMU TCG (this host's
 * controllers are bound to v1 hierarchies, which we must not re-bind), where /init runs
 * containers with `tvm-agent run` on a cgroup2 mount and prints TVM-* lines this test asserts on.
 *
 * The specs are made by the daemon's own builder (src/runtime/host/spec.ts) with a v2 cgroup
 * config and guest paths. Each container gets the cgroup tree bind-mounted read-only at /cg so
 * it reports its own limits from inside; enforcement is shown by what the workload meets:
 *   --memory 16m: memhog (64 MiB, every page touched) is OOM-killed; exit 137, oom_kill >= 1
 *   --pids-limit 8: forkcount gets 7 children (8 with itself), then EAGAIN
 *   --cpus 0.5, --cpu-shares 512, --cpuset-cpus 0: cpu.max, cpu.weight, cpuset.cpus,
 *     Cpus_allowed_list of the workload, and throttling (nr_throttled > 0) of two busy loops
 *   pause/resume: cgroup.freeze stops a counting loop and lets it go on; SIGTERM is forwarded
 *   stats: the agent's v2 readers (memory.current/max/peak, cpu.stat, pids) on a live group
 *   update: docker update's v2 writes (memory/swap, pids, cpu.max, cpu.weight) on a live group
 *   and every container's cgroup is gone at the end.
 *
 * pivot_root cannot leave the initramfs (rootfs has no parent mount), so the first /init copies
 * itself onto a tmpfs and switch_roots there, as a real guest init does.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildKernel } from '../../../src/vmm/kernel-artifacts.js';
import { buildInitramfs, busyboxEntries } from '../../../src/disks/initramfs.js';
import type { CpioEntry } from '../../../src/disks/cpio.js';
import { agentSpec, validateSpec } from '../../../src/runtime/host/spec.js';
import type { CgroupConfig } from '../../../src/runtime/host/cgroups.js';
import type { ContainerSpec, Mount, Resources } from '../../../src/runtime/types.js';
import { APPLETS, busyboxRootfsEntries, requireBusybox } from '../../fixtures/rootfs.js';
import { bootTcg, buildStaticProgram, consoleLine, KERNEL_BUILD_MS, QEMU, requireTool, type TcgBoot } from '../../fixtures/tcg.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const NATIVE = path.resolve(here, '../../../native');
const PROGRAMS = path.resolve(here, '../../fixtures/guest-programs');
const BOOT_TIMEOUT_MS = 300_000;
/** A fresh machine builds the kernel first (as boot-tcg.test.ts). */
const BUILD_AND_BOOT_TIMEOUT_MS = KERNEL_BUILD_MS + BOOT_TIMEOUT_MS;

/** Guest layout: the container image, the specs, the agent's state. */
const LOWER = '/ctr/rootfs';
const CG_ROOT = '/sys/fs/cgroup';

function buildProgram(dir: string, name: string): Buffer {
  return buildStaticProgram(path.join(PROGRAMS, `${name}.c`), dir);
}

/** A private build of the agent, so a concurrent `make -C native` elsewhere is not disturbed. */
function buildAgent(dir: string): Buffer {
  requireTool('make', ['--version'], 'make', 'the cgroup v2 TCG test');
  const build = path.join(dir, 'agent-build');
  execFileSync('make', ['-s', '-C', NATIVE, `BUILD=${build}`, `${build}/tvm-agent`], { stdio: 'pipe' });
  return readFileSync(path.join(build, 'tvm-agent'));
}

/** The container image (busybox + the test programs) as initramfs entries under LOWER. */
function imageEntries(programs: Record<string, Buffer>): CpioEntry[] {
  const out: CpioEntry[] = [];
  const root = LOWER.slice(1);
  for (const e of busyboxRootfsEntries()) {
    const p = `${root}/${e.name.replace(/\/$/, '')}`;
    const type = e.type ?? 'file';
    if (type === 'directory') out.push({ path: p, type: 'directory', mode: e.mode ?? 0o755, uid: e.uid, gid: e.gid });
    else if (type === 'symlink') out.push({ path: p, type: 'symlink', target: e.linkname });
    else if (type === 'file') out.push({ path: p, type: 'file', mode: e.mode ?? 0o644, uid: e.uid, gid: e.gid, data: e.content });
    else throw new Error(`image entry ${e.name}: type ${type} not handled`);
  }
  for (const [name, data] of Object.entries(programs)) out.push({ path: `${root}/${name}`, type: 'file', mode: 0o755, data });
  return out;
}

/** A spec made by the daemon's builder, for the guest's paths and its cgroup2 mount. */
function guestSpec(id: string, script: string, resources: Resources, mounts: Mount[] = []): string {
  const spec: ContainerSpec = {
    id,
    name: id,
    hostname: id,
    isolation: 'container',
    imageId: 'sha256:' + '0'.repeat(64),
    process: { args: ['sh', '-c', script], env: ['PATH=/bin'], cwd: '/', user: '', tty: false, openStdin: false },
    mounts: [{ type: 'bind', source: CG_ROOT, destination: '/cg', readonly: true }, ...mounts],
    resources,
    capAdd: [],
    capDrop: [],
    privileged: false,
    readonlyRootfs: false,
    network: 'none',
    stateDir: `/run/tvm/${id}`,
    logPath: `/run/tvm/${id}/log.jsonl`,
  };
  validateSpec(spec);
  const cgroup: CgroupConfig = { version: 2, root: CG_ROOT, path: `tvm/${id}` };
  return JSON.stringify(agentSpec(spec, LOWER, cgroup));
}

// What each container prints; `cg` is its own cgroup as seen through the /cg bind mount.
const MEM_SCRIPT = [
  'cg=/cg/tvm/mem',
  'echo "TVM-MEM-MAX $(cat $cg/memory.max)"',
  'echo "TVM-MEM-SWAP-MAX $(cat $cg/memory.swap.max)"',
  // a child first: the shell (the container's init) survives to read the events
  '/memhog 64',
  'echo "TVM-MEM-CHILD-EXIT $?"',
  'echo "TVM-MEM-EVENTS $(tr "\\n" " " < $cg/memory.events)"',
  // then as the container's init: its OOM kill is the container's exit
  'exec /memhog 64',
].join('; ');

const PIDS_SCRIPT = [
  // no bpf() in our kernel, so no v2 device program: the agent withholds CAP_MKNOD instead
  'if mknod /tmp/blk b 8 0 2>/dev/null; then echo "TVM-MKNOD allowed"; else echo "TVM-MKNOD refused"; fi',
  'echo "TVM-PIDS-MAX $(cat /cg/tvm/pids/pids.max)"',
  'exec /forkcount 64',
].join('; ');

const CPU_SCRIPT = [
  'cg=/cg/tvm/cpu',
  'echo "TVM-CPU-CGROUP $(cat /proc/self/cgroup)"',
  'echo "TVM-CPU-MAX $(cat $cg/cpu.max)"',
  'echo "TVM-CPU-WEIGHT $(cat $cg/cpu.weight)"',
  'echo "TVM-CPUSET-CPUS $(cat $cg/cpuset.cpus)"',
  'echo "TVM-CPUSET-EFFECTIVE $(cat $cg/cpuset.cpus.effective)"',
  'echo "TVM-CPU-MEM $(cat $cg/memory.max) $(cat $cg/memory.swap.max)"',
  'yes > /dev/null & p1=$!',
  'yes > /dev/null & p2=$!',
  'echo "TVM-CPU-ALLOWED $(grep Cpus_allowed_list /proc/$p1/status | tr -d "\\t ")"',
  'sleep 2',
  'kill $p1 $p2',
  'wait',
  'echo "TVM-CPU-STAT $(tr "\\n" " " < $cg/cpu.stat)"',
].join('; ');

const UPDATE_SCRIPT = 'while [ ! -e /shared/upd-stop ]; do sleep 0.2; done';

const FREEZE_SCRIPT = 'trap "exit 7" TERM; while :; do echo -n x >> /shared/ticks; done';

function initScript(): string {
  return `#!/bin/sh
# stage 1: leave the initramfs for a tmpfs root, where pivot_root works
export PATH=/bin
mount -t tmpfs -o mode=0755 tmpfs /newroot || echo TVM-FAIL-newroot-tmpfs
for d in bin ctr specs init2; do cp -a /$d /newroot/ || echo TVM-FAIL-copy-$d; done
mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/run /newroot/tmp
exec switch_root /newroot /init2
echo TVM-FAIL-switch_root
`;
}

function init2Script(): string {
  return `#!/bin/sh
export PATH=/bin
echo TVM-CG-START
mount -t proc proc /proc || echo TVM-FAIL-proc
mount -t sysfs sysfs /sys || echo TVM-FAIL-sysfs
mount -t devtmpfs devtmpfs /dev || echo TVM-FAIL-devtmpfs
mount -t cgroup2 cgroup2 ${CG_ROOT} || echo TVM-FAIL-cgroup2
mount -t tmpfs tmpfs /run && mkdir -p /run/tvm /run/state /run/shared || echo TVM-FAIL-run-tmpfs
echo "TVM-ROOT-CONTROLLERS $(cat ${CG_ROOT}/cgroup.controllers)"
A=/bin/tvm-agent
run() {
  $A run --spec /specs/$1.json --state-dir /run/state/$1
  echo "TVM-EXIT-$1 $?"
  echo "TVM-EXITJSON-$1 $(cat /run/state/$1/exit.json)"
}
run mem
run pids
run cpu

$A run --spec /specs/freeze.json --state-dir /run/state/freeze & rp=$!
i=0
while [ ! -s /run/shared/ticks ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
[ -s /run/shared/ticks ] || echo TVM-FAIL-freeze-container-never-counted
echo "TVM-SUBTREE $(cat ${CG_ROOT}/tvm/cgroup.subtree_control)"
echo "TVM-STATS $($A stats --spec /specs/freeze.json)"
$A pause --spec /specs/freeze.json; echo "TVM-PAUSE-EXIT $?"
echo "TVM-FREEZE-EVENTS $(grep frozen ${CG_ROOT}/tvm/freeze/cgroup.events)"
a=$(wc -c < /run/shared/ticks); sleep 1; b=$(wc -c < /run/shared/ticks)
echo "TVM-FROZEN-TICKS $a $b"
$A resume --spec /specs/freeze.json; echo "TVM-RESUME-EXIT $?"
echo "TVM-THAW-EVENTS $(grep frozen ${CG_ROOT}/tvm/freeze/cgroup.events)"
sleep 1; c=$(wc -c < /run/shared/ticks)
echo "TVM-THAWED-TICKS $b $c"
kill -TERM $rp; wait $rp; echo "TVM-EXIT-freeze $?"

$A run --spec /specs/upd.json --state-dir /run/state/upd & up=$!
g=${CG_ROOT}/tvm/upd
i=0
while [ -z "$(cat $g/cgroup.procs 2>/dev/null)" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
knobs() { echo "$(cat $g/memory.max) $(cat $g/memory.swap.max) $(cat $g/pids.max) $(cat $g/cpu.max) $(cat $g/cpu.weight)"; }
echo "TVM-UPD-BEFORE $(knobs)"
$A update --spec /specs/upd.json --resources '{"memory":33554432,"pidsLimit":5,"nanoCpus":250000000,"cpuShares":1024}'
echo "TVM-UPD-EXIT $?"
echo "TVM-UPD-AFTER $(knobs)"
$A update --spec /specs/upd.json --resources '{"pidsLimit":-1,"nanoCpus":0}'
echo "TVM-UPD-UNLIMITED $? $(cat $g/pids.max) $(cat $g/cpu.max)"
$A update --spec /specs/upd.json --resources '{"memory":1000}' 2>/run/upd.err
echo "TVM-UPD-BAD $? $(cat /run/upd.err)"
touch /run/shared/upd-stop; wait $up; echo "TVM-EXIT-upd $?"

$A stats --spec /specs/mem.json 2>/run/stats.err; echo "TVM-STATS-AFTER-EXIT $? $(cat /run/stats.err)"
$A run --spec /specs/missing.json 2>/run/badspec.err; echo "TVM-EXIT-badspec $?"
echo "TVM-BADSPEC-ERR $(cat /run/badspec.err)"
echo "TVM-CGROUPS-LEFT [$(find ${CG_ROOT}/tvm -mindepth 1 -type d | tr '\\n' ' ')]"
echo TVM-CG-DONE
reboot -f
echo TVM-FAIL-reboot-returned
`;
}

let boot: TcgBoot;

beforeAll(async () => {
  requireTool(QEMU, ['--version'], 'qemu-system-x86', 'the cgroup v2 TCG test');
  requireBusybox();
  const kernel = await buildKernel({ onProgress: (l) => process.stderr.write(`[kernel] ${l}\n`) });
  const dir = mkdtempSync(path.join(tmpdir(), 'tvm-cgroup-v2-tcg-'));
  try {
    const programs = { memhog: buildProgram(dir, 'memhog'), forkcount: buildProgram(dir, 'forkcount') };
    const shared: Mount = { type: 'bind', source: '/run/shared', destination: '/shared', readonly: false };
    const specs: Record<string, string> = {
      mem: guestSpec('mem', MEM_SCRIPT, { memory: 16 * 1024 * 1024 }),
      pids: guestSpec('pids', PIDS_SCRIPT, { pidsLimit: 8 }),
      // --memory-swap -1: unlimited swap on top of the memory limit
      cpu: guestSpec('cpu', CPU_SCRIPT, {
        nanoCpus: 500_000_000,
        cpuShares: 512,
        cpusetCpus: '0',
        memory: 64 * 1024 * 1024,
        memorySwap: -1,
      }),
      upd: guestSpec('upd', UPDATE_SCRIPT, { memory: 64 * 1024 * 1024, pidsLimit: 20, nanoCpus: 500_000_000, cpuShares: 512 }, [shared]),
      freeze: guestSpec('freeze', FREEZE_SCRIPT, { memory: 64 * 1024 * 1024, pidsLimit: 20 }, [shared]),
    };
    const initramfs = buildInitramfs({
      init: initScript(),
      dirs: ['proc', 'sys', 'tmp', 'newroot'],
      files: [
        { path: 'init2', type: 'file', mode: 0o755, data: init2Script() },
        ...busyboxEntries(readFileSync(requireBusybox()), [...new Set([...APPLETS, 'switch_root', 'tr', 'wc', 'grep'])]),
        { path: 'bin/tvm-agent', type: 'file', mode: 0o755, data: buildAgent(dir) },
        ...imageEntries(programs),
        ...Object.entries(specs).map(([id, json]): CpioEntry => ({ path: `specs/${id}.json`, type: 'file', mode: 0o644, data: json })),
      ],
    });
    const initrd = path.join(dir, 'initramfs.cpio');
    writeFileSync(initrd, initramfs);
    boot = await bootTcg({ kernel: kernel.vmlinux, initrd, memoryMiB: 256, timeoutMs: BOOT_TIMEOUT_MS });
    process.stderr.write(`[cgroup-v2-tcg] QEMU TCG boot and checks took ${boot.msTotal} ms; initramfs ${initramfs.length} bytes\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, BUILD_AND_BOOT_TIMEOUT_MS);

const line = (prefix: string): string => consoleLine(boot, prefix);

/** The value after the prefix. */
function value(prefix: string): string {
  return line(prefix).slice(prefix.length);
}

/** "key value key value ..." (memory.events, cpu.stat on one line) */
function keyed(prefix: string): Map<string, number> {
  const words = value(prefix).trim().split(/\s+/);
  const m = new Map<string, number>();
  for (let i = 0; i + 1 < words.length; i += 2) m.set(words[i]!, Number(words[i + 1]));
  return m;
}

describe('agent cgroup v2 limits in our guest kernel (QEMU TCG)', () => {
  it('boots, runs every check and powers off', () => {
    expect(boot.timedOut, boot.console.slice(-6000)).toBe(false);
    line('TVM-CG-START');
    line('TVM-CG-DONE');
    const fails = boot.console.split('\n').filter((l) => l.includes('TVM-FAIL'));
    expect(fails, boot.console.slice(-6000)).toEqual([]);
    expect(boot.exitCode).toBe(0);
    for (const bad of ['BUG:', 'Oops', 'Kernel panic', 'WARNING:']) expect(boot.console, bad).not.toContain(bad);
    expect(value('TVM-ROOT-CONTROLLERS ').split(' ')).toEqual(expect.arrayContaining(['cpuset', 'cpu', 'memory', 'pids']));
  });

  it('--memory 16m: memory.max is set and a 64 MiB workload is OOM-killed (exit 137, oom_kill counted)', () => {
    expect(value('TVM-MEM-MAX ')).toBe(String(16 * 1024 * 1024));
    // Docker: without --memory-swap, as much swap as memory
    expect(value('TVM-MEM-SWAP-MAX ')).toBe(String(16 * 1024 * 1024));
    expect(boot.console).not.toContain('MEMHOG survived');
    expect(value('TVM-MEM-CHILD-EXIT ')).toBe('137');
    expect(keyed('TVM-MEM-EVENTS ').get('oom_kill')).toBeGreaterThanOrEqual(1);
    expect(value('TVM-EXIT-mem ')).toBe('137');
    expect(JSON.parse(value('TVM-EXITJSON-mem '))).toMatchObject({ exitCode: 137, oomKilled: true });
  });

  it('--pids-limit 8: the eighth process cannot be forked', () => {
    expect(value('TVM-PIDS-MAX ')).toBe('8');
    expect(value('TVM-MKNOD ')).toBe('refused');
    expect(line('FORKCOUNT ')).toBe('FORKCOUNT forked=7 error=EAGAIN');
    expect(value('TVM-EXIT-pids ')).toBe('0');
  });

  it('--cpus 0.5, --cpu-shares 512, --cpuset-cpus 0: cpu.max, cpu.weight, cpuset and throttling', () => {
    expect(value('TVM-CPU-CGROUP ')).toBe('0::/tvm/cpu');
    expect(value('TVM-CPU-MAX ')).toBe('50000 100000');
    // runc >= 1.3.2 / crun >= 1.23: weight = ceil(10^((L^2 + 125 L) / 612 - 7/34)), L = log2(shares)
    expect(value('TVM-CPU-WEIGHT ')).toBe('59');
    expect(value('TVM-CPUSET-CPUS ')).toBe('0');
    expect(value('TVM-CPUSET-EFFECTIVE ')).toBe('0');
    expect(value('TVM-CPU-ALLOWED ')).toBe('Cpus_allowed_list:0');
    expect(value('TVM-CPU-MEM ')).toBe(`${64 * 1024 * 1024} max`);
    const stat = keyed('TVM-CPU-STAT ');
    expect(stat.get('nr_throttled')).toBeGreaterThan(0);
    expect(stat.get('throttled_usec')).toBeGreaterThan(0);
    // Two busy loops pinned to one CPU would use all of each 100 ms period they ran in; the
    // quota holds them to half (60% leaves room for the last period's overrun).
    expect(stat.get('usage_usec')).toBeLessThanOrEqual(stat.get('nr_periods')! * 100_000 * 0.6);
    expect(value('TVM-EXIT-cpu ')).toBe('0');
  });

  it('pause/resume freeze and thaw the cgroup; SIGTERM reaches the container; exit status is its own', () => {
    expect(value('TVM-SUBTREE ').split(' ')).toEqual(expect.arrayContaining(['cpuset', 'cpu', 'memory', 'pids']));
    expect(value('TVM-PAUSE-EXIT ')).toBe('0');
    expect(value('TVM-FREEZE-EVENTS ')).toBe('frozen 1');
    const [a, b] = value('TVM-FROZEN-TICKS ').split(' ').map(Number);
    expect(a).toBeGreaterThan(0);
    expect(b).toBe(a);
    expect(value('TVM-RESUME-EXIT ')).toBe('0');
    expect(value('TVM-THAW-EVENTS ')).toBe('frozen 0');
    const [b2, c] = value('TVM-THAWED-TICKS ').split(' ').map(Number);
    expect(c).toBeGreaterThan(b2!);
    expect(value('TVM-EXIT-freeze ')).toBe('7');
  });

  it('tvm-agent stats reads the v2 counters of a running container (memory, cpu, pids, oom)', () => {
    const st = JSON.parse(value('TVM-STATS ')) as {
      memory: { usage: number; limit: number; maxUsage: number };
      cpu: { usageNs: number };
      pids: { current: number; limit: number };
      oomKills: number;
    };
    expect(st.memory.limit).toBe(64 * 1024 * 1024);
    expect(st.memory.usage).toBeGreaterThan(0);
    expect(st.memory.usage).toBeLessThanOrEqual(st.memory.limit);
    expect(st.memory.maxUsage).toBeGreaterThanOrEqual(st.memory.usage);
    expect(st.cpu.usageNs).toBeGreaterThan(0);
    expect(st.pids).toEqual({ current: 1, limit: 20 });
    expect(st.oomKills).toBe(0);
    // once `run` has ended, the group is gone and stats says so
    expect(value('TVM-STATS-AFTER-EXIT ')).toBe('1 tvm-agent stats: no cgroup for container mem at /sys/fs/cgroup/tvm/mem');
  });

  it('tvm-agent update changes the v2 limits of a running container (docker update)', () => {
    const mib = 1024 * 1024;
    expect(value('TVM-UPD-BEFORE ')).toBe(`${64 * mib} ${64 * mib} 20 50000 100000 59`);
    expect(value('TVM-UPD-EXIT ')).toBe('0');
    // swap follows the new memory limit (no --memory-swap: as much swap as memory); shares 1024 -> weight 100
    expect(value('TVM-UPD-AFTER ')).toBe(`${32 * mib} ${32 * mib} 5 25000 100000 100`);
    expect(value('TVM-UPD-UNLIMITED ')).toBe('0 max max 100000');
    expect(value('TVM-UPD-BAD ')).toBe('1 tvm-agent update: update.resources.memory: minimum memory limit allowed is 6MB');
    expect(value('TVM-EXIT-upd ')).toBe('0');
  });

  it('a missing spec is an agent error (125) naming the file', () => {
    expect(value('TVM-EXIT-badspec ')).toBe('125');
    expect(value('TVM-BADSPEC-ERR ')).toContain('/specs/missing.json');
  });

  it('removes every container cgroup it created', () => {
    expect(value('TVM-CGROUPS-LEFT ')).toBe('[]');
  });
});
