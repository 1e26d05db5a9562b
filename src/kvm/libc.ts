/**
 * The libc calls the VMM needs, bound with koffi. Nothing outside src/kvm calls koffi.
 *
 * Conventions: file descriptors are numbers; addresses of mappings are numbers (x86_64 user
 * addresses are below 2^47, so they are exact as doubles) which lets any worker thread of the
 * process re-create a view of the same memory with `viewAddress` (ArrayBuffers over external
 * memory cannot be transferred between threads, but the memory itself is process-wide).
 * Every failing call throws a SysError carrying errno and the syscall's name; errno is read
 * through koffi right after the call, on the calling thread.
 */
import koffi from 'koffi';
import { constants as osConstants } from 'node:os';
import { TvmError } from '../errors.js';
import type { ErrnoName } from '../error-codes.js';

const ERRNO_NAMES = new Map<number, ErrnoName>(Object.entries(osConstants.errno).map(([k, v]) => [v, k as ErrnoName]));

export class SysError extends TvmError {
  readonly errno: number;
  readonly syscall: string;
  constructor(syscall: string, errno: number, what?: string) {
    const name = ERRNO_NAMES.get(errno) ?? (`errno ${errno}` as const);
    super(name, `${syscall}${what ? ` (${what})` : ''} failed: ${name}`, 500);
    this.errno = errno;
    this.syscall = syscall;
  }
}

export const O_RDONLY = 0;
export const O_RDWR = 2;
export const O_WRONLY = 1;
export const O_CREAT = 0o100;
export const O_APPEND = 0o2000;
export const O_CLOEXEC = 0o2000000;
/** setns(2)'s nstype for a network namespace */
export const CLONE_NEWNET = 0x40000000;
export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const MADV_DONTNEED = 4;
export const MADV_HUGEPAGE = 14;
export const MADV_DONTDUMP = 16;
export const MFD_CLOEXEC = 1;
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
export const EPOLL_CLOEXEC = 0o2000000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
export const EPOLLIN = 0x001;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const SIG_BLOCK = 0;
export const SIG_UNBLOCK = 1;
export const SIG_SETMASK = 2;
/** glibc's sigset_t is 1024 bits; the kernel's (KVM_SET_SIGNAL_MASK) is 64. */
export const SIGSET_BYTES = 128;
export const KERNEL_SIGSET_BYTES = 8;
/** struct epoll_event is packed on x86_64: u32 events, u64 data. */
export const EPOLL_EVENT_SIZE = 12;
const EINTR = osConstants.errno.EINTR;
const EAGAIN = osConstants.errno.EAGAIN;

const lib = koffi.load('libc.so.6');
const c = {
  open: lib.func('int open(const char *path, int flags, int mode)'),
  close: lib.func('int close(int fd)'),
  ioctlInt: lib.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']),
  ioctlPtr: lib.func('ioctl', 'int', ['int', 'unsigned long', 'void *']),
  mmap: lib.func('intptr_t mmap(intptr_t addr, size_t len, int prot, int flags, int fd, int64_t off)'),
  munmap: lib.func('int munmap(intptr_t addr, size_t len)'),
  madvise: lib.func('int madvise(intptr_t addr, size_t len, int advice)'),
  memfdCreate: lib.func('int memfd_create(const char *name, unsigned int flags)'),
  ftruncate: lib.func('int ftruncate(int fd, int64_t len)'),
  eventfd: lib.func('int eventfd(unsigned int initval, int flags)'),
  epollCreate1: lib.func('int epoll_create1(int flags)'),
  epollCtl: lib.func('int epoll_ctl(int epfd, int op, int fd, void *event)'),
  epollWait: lib.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)'),
  read: lib.func('intptr_t read(int fd, void *buf, size_t count)'),
  write: lib.func('intptr_t write(int fd, const void *buf, size_t count)'),
  getpid: lib.func('int getpid(void)'),
  setns: lib.func('int setns(int fd, int nstype)'),
  dup2: lib.func('int dup2(int oldfd, int newfd)'),
  gettid: lib.func('int gettid(void)'),
  tgkill: lib.func('int tgkill(int tgid, int tid, int sig)'),
  signal: lib.func('intptr_t signal(int sig, intptr_t handler)'),
  sigaction: lib.func('int sigaction(int sig, void *act, void *oldact)'),
  dlsym: lib.func('intptr_t dlsym(intptr_t handle, const char *name)'),
  pthreadSigmask: lib.func('int pthread_sigmask(int how, void *set, void *oldset)'),
  sigtimedwait: lib.func('int sigtimedwait(void *set, void *info, void *timeout)'),
  sigrtmin: lib.func('int __libc_current_sigrtmin(void)'),
};

/** `ret`: what a koffi binding of an int-returning call gave back (typed `any` by koffi). */
function check(ret: unknown, syscall: string, what?: string): number {
  const n = ret as number;
  if (n < 0) throw new SysError(syscall, koffi.errno(), what);
  return n;
}

type Bytes = Uint8Array | DataView;

export function open(path: string, flags: number, mode = 0): number {
  return check(c.open(path, flags | O_CLOEXEC, mode), 'open', path);
}
export function close(fd: number): void {
  check(c.close(fd), 'close');
}
/** Moves the calling thread (only it: the others stay where they are) into the namespace open at `fd`. */
export function setns(fd: number, nstype: number): void {
  check(c.setns(fd, nstype), 'setns');
}
export function dup2(oldfd: number, newfd: number): void {
  check(c.dup2(oldfd, newfd), 'dup2');
}
/** ioctl whose argument is an integer (or none). Returns the non-negative result. */
export function ioctl(fd: number, request: number, arg: number | bigint = 0, name?: string): number {
  return check(c.ioctlInt(fd, request, arg), 'ioctl', name);
}
/** ioctl whose argument points at `buf` (the kernel reads and/or writes it in place). */
export function ioctlPtr(fd: number, request: number, buf: Bytes, name?: string): number {
  return check(c.ioctlPtr(fd, request, buf), 'ioctl', name);
}
/** Like ioctl but returns -errno instead of throwing (for KVM_RUN's EINTR/EAGAIN on the hot path). */
export function ioctlRaw(fd: number, request: number, arg: number | bigint = 0): number {
  const r = c.ioctlInt(fd, request, arg) as number;
  return r < 0 ? -koffi.errno() : r;
}
export function mmap(addr: number, len: number, prot: number, flags: number, fd: number, offset = 0): number {
  const a = c.mmap(addr, len, prot, flags, fd, offset) as number;
  if (a === -1) throw new SysError('mmap', koffi.errno(), `${len} bytes`);
  return a;
}
export function munmap(addr: number, len: number): void {
  check(c.munmap(addr, len), 'munmap');
}
export function madvise(addr: number, len: number, advice: number): void {
  check(c.madvise(addr, len, advice), 'madvise');
}
export function memfdCreate(name: string, flags = MFD_CLOEXEC): number {
  return check(c.memfdCreate(name, flags), 'memfd_create', name);
}
export function ftruncate(fd: number, len: number): void {
  check(c.ftruncate(fd, len), 'ftruncate');
}
export function eventfd(initval = 0, flags = EFD_CLOEXEC): number {
  return check(c.eventfd(initval, flags), 'eventfd');
}
export function epollCreate1(flags = EPOLL_CLOEXEC): number {
  return check(c.epollCreate1(flags), 'epoll_create1');
}
export function epollCtl(epfd: number, op: number, fd: number, events: number, data: bigint = BigInt(fd)): void {
  const ev = new Uint8Array(EPOLL_EVENT_SIZE);
  const v = new DataView(ev.buffer);
  v.setUint32(0, events, true);
  v.setBigUint64(4, data, true);
  check(c.epollCtl(epfd, op, fd, ev), 'epoll_ctl');
}
export interface EpollEvent {
  events: number;
  data: bigint;
}
/** Waits up to `timeoutMs` (-1: forever); EINTR yields an empty list. */
export function epollWait(epfd: number, maxEvents: number, timeoutMs: number): EpollEvent[] {
  const buf = new Uint8Array(EPOLL_EVENT_SIZE * maxEvents);
  const n = c.epollWait(epfd, buf, maxEvents, timeoutMs) as number;
  if (n < 0) {
    const e = koffi.errno();
    if (e === EINTR) return [];
    throw new SysError('epoll_wait', e);
  }
  const v = new DataView(buf.buffer);
  const out: EpollEvent[] = [];
  for (let i = 0; i < n; i++) out.push({ events: v.getUint32(i * 12, true), data: v.getBigUint64(i * 12 + 4, true) });
  return out;
}
/** Returns bytes read, or -1 when a non-blocking fd has nothing (EAGAIN). */
export function read(fd: number, buf: Uint8Array): number {
  const n = Number(c.read(fd, buf, buf.byteLength));
  if (n < 0) {
    const e = koffi.errno();
    if (e === EAGAIN) return -1;
    throw new SysError('read', e);
  }
  return n;
}
export function write(fd: number, buf: Uint8Array): number {
  return check(Number(c.write(fd, buf, buf.byteLength)), 'write');
}
/** Adds 1 (or n) to an eventfd counter. */
export function eventfdSignal(fd: number, n = 1n): void {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, n, true);
  write(fd, b);
}

/** An ArrayBuffer over `len` bytes of this process's memory at `addr` (no copy). */
export function viewAddress(addr: number, len: number): ArrayBuffer {
  const ptr: unknown = koffi.decode(new BigUint64Array([BigInt(addr)]), 'void *');
  return koffi.view(ptr, len);
}

// ---- threads and signals (kicking a vCPU thread out of KVM_RUN) ----
export const getpid = (): number => c.getpid() as number;
export const gettid = (): number => c.gettid() as number;
export function tgkill(tgid: number, tid: number, sig: number): void {
  check(c.tgkill(tgid, tid, sig), 'tgkill');
}
export const sigrtmin = (): number => c.sigrtmin() as number;
/** Sets the process-wide disposition of `sig` to SIG_IGN. */
export function ignoreSignal(sig: number): void {
  if ((c.signal(sig, 1) as number) === -1) throw new SysError('signal', koffi.errno());
}
/** glibc's struct sigaction on x86_64: handler, sa_mask (128 bytes), sa_flags, sa_restorer. */
const SIGACTION_SIZE = 152;
const SA_MASK_OFFSET = 8;
const SA_FLAGS_OFFSET = 136;

/**
 * Installs a handler that does nothing for `sig` (process-wide). A vCPU thread is kicked out of
 * KVM_RUN with such a signal: it must have a handler, because an ignored signal is dropped
 * when it is sent and would not interrupt KVM_RUN, and the default action would kill the
 * process. The handler is libc's getpid (async-signal-safe, ignores its argument), found
 * with dlsym, since a JS callback must never run in signal context.
 */
export function installNoopSignalHandler(sig: number): void {
  const fn = c.dlsym(0, 'getpid') as number;
  if (!fn) throw new SysError('dlsym', 0, 'getpid');
  const act = new Uint8Array(SIGACTION_SIZE);
  const v = new DataView(act.buffer);
  v.setBigUint64(0, BigInt(fn), true);
  act.fill(0xff, SA_MASK_OFFSET, SA_MASK_OFFSET + SIGSET_BYTES); // block everything while it runs
  v.setInt32(SA_FLAGS_OFFSET, 0, true);
  check(c.sigaction(sig, act, null), 'sigaction');
}

export function sigset(signals: number[], bytes = SIGSET_BYTES): Uint8Array {
  const s = new Uint8Array(bytes);
  for (const sig of signals) s[(sig - 1) >> 3]! |= 1 << ((sig - 1) & 7);
  return s;
}
/** pthread_sigmask; `old` (SIGSET_BYTES) receives the previous mask when given. */
export function pthreadSigmask(how: number, set: Uint8Array, old: Uint8Array | null = null): void {
  const r = c.pthreadSigmask(how, set, old) as number;
  if (r !== 0) throw new SysError('pthread_sigmask', r);
}
/** Consumes one pending signal of `set` without waiting; returns its number or 0. */
export function sigtimedwaitNow(set: Uint8Array): number {
  const ts = new Uint8Array(16);
  const info = new Uint8Array(128);
  const r = c.sigtimedwait(set, info, ts) as number;
  if (r < 0) {
    const e = koffi.errno();
    if (e === EAGAIN || e === EINTR) return 0;
    throw new SysError('sigtimedwait', e);
  }
  return r;
}
