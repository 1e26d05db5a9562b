/**
 * What only VM isolation must show, through the docker CLI against a real `tvm daemon` on this
 * host's backend (tcg here: QEMU's software CPU with tvm's devices over vhost-user; kvm where
 * /dev/kvm exists). Few VMs, many checks each: every boot costs seconds under TCG.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync, readlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { startTestDaemon, missingRealParts, requireDocker, type TestDaemon } from '../../fixtures/daemon.js';
import { busyboxDockerArchive } from '../../fixtures/fake-images.js';
import { busyboxRootfsEntries, packTar } from '../../fixtures/rootfs.js';
import { buildStaticProgram, requireTool } from '../../fixtures/tcg.js';
import { until } from '../../fixtures/wait.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const PROGRAMS = path.resolve(here, '../../fixtures/guest-programs');

async function sha256File(p: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(p))
    .digest('hex');
}

/** Processes whose command line names `needle` (ours only: the test's own temp dirs). */
async function processesNaming(needle: string): Promise<number[]> {
  const out: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    // a process that exited meanwhile has no command line: it is not one we look for
    const cmd = await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(needle)) out.push(Number(e));
  }
  return out;
}

/**
 * The suite; `backend` forces `tvm daemon --vm-backend` (test/kvm runs it with 'kvm'), else the
 * daemon picks (kvm where /dev/kvm is usable, tcg otherwise).
 */
export function vmIsolationSuite(backend?: 'kvm' | 'tcg'): void {
  describe(`--isolation=vm through the docker CLI (backend ${backend ?? 'auto'})`, () => {
    let d: TestDaemon;
    let tmp: string;
    const run = (args: string[], opts = {}) => d.docker(args, opts);

    beforeAll(async () => {
      requireDocker();
      requireTool('qemu-img', ['--version'], 'qemu-utils', 'the VM disk checks');
      const missing = missingRealParts();
      if (missing.length > 0) throw new Error(`the real daemon needs parts that are missing: ${missing.join(', ')}`);
      d = await startTestDaemon({ defaultIsolation: 'vm', ...(backend && { daemonArgs: ['--vm-backend', backend] }) });
      tmp = await mkdtemp(path.join(os.tmpdir(), 'tvm-vm-'));
      await writeFile(path.join(tmp, 'busybox.tar'), await busyboxDockerArchive());
      expect((await run(['load', '-i', path.join(tmp, 'busybox.tar')])).exitCode).toBe(0);
      // an image with a program that does port I/O from user mode
      const portio = buildStaticProgram(path.join(PROGRAMS, 'portio.c'), tmp);
      await writeFile(
        path.join(tmp, 'portio.tar'),
        await packTar([...busyboxRootfsEntries(), { name: 'portio', mode: 0o755, content: portio }]),
      );
      const imp = await run(['import', path.join(tmp, 'portio.tar'), 'portio:1']);
      expect(imp.exitCode, imp.stderr).toBe(0);
    }, 600_000);

    afterAll(async () => {
      if (d) {
        const ids = (await run(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
        if (ids.length > 0) await run(['rm', '-f', ...ids]);
        await d.destroy();
      }
      if (tmp) await rm(tmp, { recursive: true, force: true });
    });

    it('runs in its own kernel and passes the exit code through (the issue\'s "done when")', async () => {
      const info = await run(['info', '--format', '{{json .DriverStatus}}']);
      const expected = backend ?? (existsSync('/dev/kvm') ? 'kvm' : 'tcg');
      expect(info.stdout).toContain(`["VM backend","${expected}"]`);
      const r = await run(['run', '--rm', '--isolation=vm', 'busybox', 'sh', '-c', 'uname -r; exit 5']);
      expect(r.exitCode, r.stderr).toBe(5);
      expect(r.stdout).toMatch(/^6\.1\.\d+$/);
      expect(r.stdout).not.toBe(os.release());
    });

    it('isolates VMs of one image from each other and never writes the base disk', async () => {
      const a = await run([
        'run',
        '-d',
        '--name',
        'vma',
        '-m',
        '64m',
        '--pids-limit',
        '50',
        'busybox',
        'sh',
        '-c',
        'echo a-only > /mark; sleep 60',
      ]);
      expect(a.exitCode, a.stderr).toBe(0);
      const id = a.stdout;
      const vmDir = path.join(d.dataRoot, 'containers', id);
      const rec = JSON.parse(await readFile(path.join(vmDir, 'vm.json'), 'utf8')) as { baseDisk: string; disk: string };
      const baseHash = await sha256File(rec.baseDisk);
      await until('the mark', async () => ((await run(['exec', 'vma', 'cat', '/mark'])).stdout === 'a-only' ? true : undefined));
      expect((await run(['inspect', '-f', '{{.HostConfig.Isolation}} {{.HostConfig.Runtime}}', 'vma'])).stdout).toMatch(
        /^vm tvm-vm-(tcg|kvm)$/,
      );

      // guest RAM is the limit plus the margin; the limit itself is the guest cgroup's
      const mem = await run(['exec', 'vma', 'sh', '-c', "grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2"]);
      expect(Number(mem.stdout) / 1024).toBeGreaterThan(64);
      expect(Number(mem.stdout) / 1024).toBeLessThanOrEqual(64 + 96);
      const stats = await run(['stats', '--no-stream', '--format', '{{.MemUsage}}|{{.PIDs}}', 'vma']);
      expect(stats.stdout).toMatch(/ \/ 64MiB\|\d+$/);

      // an exec that streams while another exec runs
      const streaming = run(['exec', 'vma', 'sh', '-c', 'for i in 1 2 3 4 5 6; do echo s$i; sleep 0.3; done']);
      await new Promise((r) => setTimeout(r, 400));
      const quick = await run(['exec', 'vma', 'echo', 'quick']);
      expect(quick.stdout).toBe('quick');
      expect((await streaming).stdout).toBe('s1\ns2\ns3\ns4\ns5\ns6');

      // a second VM of the same image sees the image, not the first VM's writes
      const b = await run(['run', '--rm', 'busybox', 'sh', '-c', 'cat /mark 2>/dev/null || echo absent; ls /bin/busybox']);
      expect([b.exitCode, b.stdout]).toEqual([0, 'absent\n/bin/busybox']);

      expect((await run(['stop', '-t', '1', 'vma'])).exitCode).toBe(0);
      // the overlay is a clean qcow2 after the guest is gone; the base disk is as it was
      const check = await execa('qemu-img', ['check', '-f', 'qcow2', rec.disk], { reject: false });
      expect(check.exitCode, `${check.stdout}\n${check.stderr}`).toBe(0);
      expect(String(check.stdout)).toMatch(/No errors were found on the image/);
      expect(await sha256File(rec.baseDisk)).toBe(baseHash);
      // the change is the container's: docker diff reads it from the overlay
      expect((await run(['diff', 'vma'])).stdout.split('\n')).toContain('A /mark');

      expect((await run(['rm', 'vma'])).exitCode).toBe(0);
      expect(existsSync(vmDir)).toBe(false);
      expect(await processesNaming(vmDir)).toEqual([]);
    });

    it('a guest user process doing port I/O gets SIGSEGV, and the next VM (a larger disk) works', async () => {
      const r = await run(['run', '--rm', 'portio:1', '/portio']);
      expect(r.stdout).toBe('before');
      expect(r.exitCode).toBe(139);
      // --storage-opt size: the overlay is larger and the agent grows the filesystem at boot
      const next = await run([
        'run',
        '--rm',
        '--storage-opt',
        'size=2G',
        'busybox',
        'sh',
        '-c',
        "echo next; df -k / | tail -1 | tr -s ' ' | cut -d' ' -f2",
      ]);
      expect(next.exitCode, next.stderr).toBe(0);
      const [word, kib] = next.stdout.split('\n');
      expect(word).toBe('next');
      expect(Number(kib)).toBeGreaterThan(1.8 * 1024 * 1024);
      const small = await run(['run', '--rm', '--storage-opt', 'size=64M', 'busybox', 'true']);
      expect(small.stderr).toMatch(/smaller than the image's disk/);
    });

    it('a SIGKILLed VM supervisor takes QEMU with it; a SIGKILLed QEMU ends the container with the reason; rm -f leaves nothing', async () => {
      const id = (await run(['run', '-d', 'busybox', 'sleep', '60'])).stdout;
      const vmDir = path.join(d.dataRoot, 'containers', id);
      const pid = Number(await readFile(path.join(vmDir, 'supervisor.pid'), 'utf8'));
      process.kill(pid, 'SIGKILL');
      const w = await run(['wait', id], { timeout: 60_000 });
      expect(w.stdout).toBe('255');
      await until('QEMU gone', async () => ((await processesNaming(vmDir)).length === 0 ? true : undefined));
      expect((await run(['rm', '-f', id])).exitCode).toBe(0);
      expect(existsSync(vmDir)).toBe(false);

      // QEMU (the vCPU) killed under a running workload: the container ends with the reason
      const id2 = (await run(['run', '-d', 'busybox', 'sleep', '60'])).stdout;
      const vmDir2 = path.join(d.dataRoot, 'containers', id2);
      const qemu = (await processesNaming(vmDir2)).filter((p) => readlinkSync(`/proc/${p}/exe`).includes('qemu-system'));
      if (backend !== 'kvm' && !existsSync('/dev/kvm')) {
        expect(qemu).toHaveLength(1);
        process.kill(qemu[0]!, 'SIGKILL');
        expect((await run(['wait', id2], { timeout: 60_000 })).stdout).toBe('255');
        expect((await run(['inspect', '-f', '{{.State.Error}}', id2])).stdout).toMatch(
          /the VM ended unexpectedly: QEMU exited with SIGKILL/,
        );
        await until('the supervisor gone', async () => ((await processesNaming(vmDir2)).length === 0 ? true : undefined));
      }
      expect((await run(['rm', '-f', id2])).exitCode).toBe(0);
    });
  });
}
