import { describe, it, expect } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as libc from '../../../src/kvm/libc.js';
import { detectKvm, requireKvm, KvmUnavailableError } from '../../../src/kvm/detect.js';
import { Kvm } from '../../../src/kvm/kvm.js';
import { scratchDir } from '../../fixtures/scratch.js';

describe('libc bindings', () => {
  it('open/close and SysError with errno and syscall name', () => {
    const fd = libc.open('/dev/null', libc.O_RDWR);
    expect(fd).toBeGreaterThan(2);
    libc.close(fd);
    try {
      libc.open('/nonexistent/x', libc.O_RDONLY);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(libc.SysError);
      expect((e as libc.SysError).errno).toBe(2);
      expect((e as libc.SysError).code).toBe('ENOENT');
      expect((e as libc.SysError).message).toMatch(/open \(\/nonexistent\/x\) failed: ENOENT/);
    }
    expect(() => libc.close(100000)).toThrow(/close failed: EBADF/);
  });

  it('memfd + mmap MAP_SHARED: two views of one page see each other', () => {
    const fd = libc.memfdCreate('tvm-test');
    libc.ftruncate(fd, 8192);
    const a = libc.mmap(0, 8192, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED, fd, 0);
    const b = libc.mmap(0, 8192, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED, fd, 0);
    const va = new Uint8Array(libc.viewAddress(a, 8192));
    const vb = new Uint8Array(libc.viewAddress(b, 8192));
    va[4097] = 0x5a;
    expect(vb[4097]).toBe(0x5a);
    libc.madvise(a, 8192, libc.MADV_DONTDUMP);
    libc.munmap(a, 8192);
    libc.munmap(b, 8192);
    libc.close(fd);
  });

  it('ioctl reports the errno (ENOTTY on /dev/null)', () => {
    const fd = libc.open('/dev/null', libc.O_RDWR);
    expect(() => libc.ioctlPtr(fd, 0x5401, new Uint8Array(64), 'TCGETS')).toThrow(/TCGETS.*ENOTTY/);
    expect(libc.ioctlRaw(fd, 0x5401, 0)).toBe(-25);
    libc.close(fd);
  });

  it('eventfd + epoll', () => {
    const ev = libc.eventfd(0, libc.EFD_CLOEXEC | libc.EFD_NONBLOCK);
    const ep = libc.epollCreate1();
    libc.epollCtl(ep, libc.EPOLL_CTL_ADD, ev, libc.EPOLLIN, 77n);
    expect(libc.epollWait(ep, 4, 0)).toEqual([]);
    libc.eventfdSignal(ev, 3n);
    expect(libc.epollWait(ep, 4, 1000)).toEqual([{ events: libc.EPOLLIN, data: 77n }]);
    const buf = new Uint8Array(8);
    expect(libc.read(ev, buf)).toBe(8);
    expect(new DataView(buf.buffer).getBigUint64(0, true)).toBe(3n);
    expect(libc.read(ev, buf)).toBe(-1);
    libc.close(ep);
    libc.close(ev);
  });

  it('signal sets and a blocked pending signal consumed by sigtimedwait', () => {
    const sig = libc.sigrtmin() + 5;
    const set = libc.sigset([sig]);
    expect(set[(sig - 1) >> 3]).toBe(1 << ((sig - 1) & 7));
    libc.ignoreSignal(sig);
    libc.pthreadSigmask(libc.SIG_BLOCK, set);
    libc.tgkill(libc.getpid(), libc.gettid(), sig);
    expect(libc.sigtimedwaitNow(set)).toBe(sig);
    expect(libc.sigtimedwaitNow(set)).toBe(0);
    libc.pthreadSigmask(libc.SIG_UNBLOCK, set);
  });

  it('a no-op handler lets a kick signal be delivered without killing the process', () => {
    const sig = libc.sigrtmin() + 6;
    libc.installNoopSignalHandler(sig);
    libc.tgkill(libc.getpid(), libc.gettid(), sig); // unblocked: delivered to getpid, harmless
    const set = libc.sigset([sig]);
    const old = new Uint8Array(libc.SIGSET_BYTES);
    libc.pthreadSigmask(libc.SIG_BLOCK, set, old);
    expect(old[(sig - 1) >> 3]! & (1 << ((sig - 1) & 7))).toBe(0);
    libc.tgkill(libc.getpid(), libc.gettid(), sig); // blocked: stays pending
    expect(libc.sigtimedwaitNow(set)).toBe(sig);
    libc.pthreadSigmask(libc.SIG_UNBLOCK, set);
  });
});

describe('KVM detection', () => {
  it('names the missing device and the PVM case', () => {
    const dir = scratchDir('tvm-detect-');
    mkdirSync(path.join(dir, 'sys', 'kvm_pvm'), { recursive: true });
    const dev = path.join(dir, 'kvm');
    expect(detectKvm(dev, path.join(dir, 'sys'))).toEqual({ device: dev, present: false, flavor: 'pvm' });
    expect(() => requireKvm(dev, path.join(dir, 'sys'))).toThrow(KvmUnavailableError);
    expect(() => requireKvm(dev, path.join(dir, 'sys'))).toThrow(/missing .*kvm.*kvm_pvm/);
    expect(detectKvm(dev, path.join(dir, 'none')).flavor).toBe('hardware');
    writeFileSync(dev, '');
    expect(detectKvm(dev, path.join(dir, 'none')).present).toBe(true);
  });
  it('Kvm.open fails with a typed error on a path that is not there', () => {
    expect(() => Kvm.open('/nonexistent/kvm')).toThrow(/missing \/nonexistent\/kvm/);
  });
});
