import { describe, it, expect } from 'vitest';
import { readdirSync } from 'node:fs';
import * as libc from '../../../src/kvm/libc.js';
import { Vcpu } from '../../../src/kvm/vcpu.js';
import { VcpuThread, allocateControl } from '../../../src/vmm/vcpu-loop.js';

// Without /dev/kvm the worker cannot run a guest, but its start-up path can be exercised: it
// loads in a real worker_thread (under the same TS loader), views kvm_run by address, blocks
// the kick signal and fails on the first KVM ioctl of a non-KVM fd, reporting the errno.
describe('vCPU worker thread start-up', () => {
  it('reports a failing KVM ioctl with its name and errno, and its thread ends', async () => {
    const fd = libc.open('/dev/null', libc.O_RDWR);
    const runSize = 3 * 4096;
    const runAddr = libc.mmap(0, runSize, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED | libc.MAP_ANONYMOUS, -1, 0);
    try {
      const vcpu = Vcpu.borrow(fd, 0, runAddr, runSize);
      const t = new VcpuThread(vcpu, allocateControl(1), { guardPio: true, onDeviceExit: () => {}, onError: () => {} });
      await t.start();
      const end = await t.ended;
      expect(end).toEqual({ kind: 'error', detail: expect.stringMatching(/KVM_SET_SIGNAL_MASK.*ENOTTY/) });
      expect(await t.stop()).toEqual(end);
    } finally {
      libc.munmap(runAddr, runSize);
      libc.close(fd);
    }
  });

  it('worker threads that ended leave no fd or thread behind', async () => {
    const fd = libc.open('/dev/null', libc.O_RDWR);
    const runSize = 3 * 4096;
    const runAddr = libc.mmap(0, runSize, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED | libc.MAP_ANONYMOUS, -1, 0);
    const count = () => [readdirSync('/proc/self/fd').length, readdirSync('/proc/self/task').length];
    const once = async () => {
      const t = new VcpuThread(Vcpu.borrow(fd, 0, runAddr, runSize), allocateControl(1), {
        guardPio: true,
        onDeviceExit: () => {},
        onError: () => {},
      });
      await t.start();
      await t.ended;
    };
    try {
      await once(); // warm up the loader
      const before = count();
      for (let i = 0; i < 2; i++) await once();
      expect(count()).toEqual(before);
    } finally {
      libc.munmap(runAddr, runSize);
      libc.close(fd);
    }
  });
});
