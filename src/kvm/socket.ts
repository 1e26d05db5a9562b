/**
 * Unix-socket calls Node does not offer (nodejs/node#53391: no file-descriptor passing), bound
 * with koffi beside libc.ts: socketpair, sendmsg/recvmsg carrying SCM_RIGHTS, and FD_CLOEXEC
 * control so one end of a pair can be handed to a child process (QEMU's `-chardev socket,fd=N`).
 *
 * sendmsg/recvmsg need a msghdr whose pointers reach the iovec and the control buffer, so the
 * structs are built in a small per-thread scratch mapping whose address is known (JS buffers
 * have none); data is copied in and out of it. The vhost-user control plane sends a few hundred
 * bytes per message, so the copy costs nothing that matters.
 *
 * Layouts (x86_64 glibc, <sys/socket.h>, <sys/uio.h>) are pinned by
 * test/unit/kvm/socket-structs.test.ts against gcc's sizeof/offsetof.
 */
import koffi from 'koffi';
import { constants as osConstants } from 'node:os';
import { Layout, type FieldType, type Field } from './layout.js';
import * as libc from './libc.js';
import { SysError } from './libc.js';
import { InvalidParameterError } from '../errors.js';

const f = (offset: number, type: FieldType): Field => ({ offset, type });

export const AF_UNIX = 1;
export const SOCK_STREAM = 1;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SCM_RIGHTS = 1;
export const MSG_CTRUNC = 0x8;
export const MSG_DONTWAIT = 0x40;
export const MSG_NOSIGNAL = 0x4000;
export const MSG_CMSG_CLOEXEC = 0x40000000;
export const F_GETFD = 1;
export const F_SETFD = 2;
export const FD_CLOEXEC = 1;
export const SHUT_RDWR = 2;
export const SOCK_NONBLOCK = 0o4000;
/** struct sockaddr_un: sa_family_t sun_family; char sun_path[108]. */
export const SOCKADDR_UN = { size: 110, family: 0, path: 2, pathMax: 108 } as const;
/** File descriptors one message carries at most (vhost-user's VHOST_MEMORY_BASELINE_NREGIONS). */
export const MAX_FDS = 8;
/** Bytes one sendmsg/recvmsg moves at most through the scratch area. */
export const MAX_IO_BYTES = 60 * 1024;

export const iovec = new Layout<{ iov_base: bigint; iov_len: bigint }>('struct iovec', 16, {
  iov_base: f(0, 'u64'),
  iov_len: f(8, 'u64'),
});
export const msghdr = new Layout<{
  msg_name: bigint;
  msg_namelen: number;
  msg_iov: bigint;
  msg_iovlen: bigint;
  msg_control: bigint;
  msg_controllen: bigint;
  msg_flags: number;
}>('struct msghdr', 56, {
  msg_name: f(0, 'u64'),
  msg_namelen: f(8, 'u32'),
  msg_iov: f(16, 'u64'),
  msg_iovlen: f(24, 'u64'),
  msg_control: f(32, 'u64'),
  msg_controllen: f(40, 'u64'),
  msg_flags: f(48, 'i32'),
});
/** The header of one control message; its data follows at CMSG_DATA (offset 16). */
export const cmsghdr = new Layout<{ cmsg_len: bigint; cmsg_level: number; cmsg_type: number }>('struct cmsghdr', 16, {
  cmsg_len: f(0, 'u64'),
  cmsg_level: f(8, 'i32'),
  cmsg_type: f(12, 'i32'),
});
export const SOCKET_LAYOUTS = [iovec, msghdr, cmsghdr] as Layout<object>[];

const align8 = (n: number): number => (n + 7) & ~7;
/** CMSG_LEN / CMSG_SPACE for `n` ints. */
export const cmsgLen = (n: number): number => cmsghdr.size + 4 * n;
export const cmsgSpace = (n: number): number => cmsghdr.size + align8(4 * n);

const EAGAIN = osConstants.errno.EAGAIN;
const EINTR = osConstants.errno.EINTR;

const lib = koffi.load('libc.so.6');
const c = {
  socketpair: lib.func('int socketpair(int domain, int type, int protocol, _Out_ int *sv)'),
  sendmsg: lib.func('intptr_t sendmsg(int fd, intptr_t msg, int flags)'),
  recvmsg: lib.func('intptr_t recvmsg(int fd, intptr_t msg, int flags)'),
  fcntl: lib.func('int fcntl(int fd, int cmd, ...)'),
  shutdown: lib.func('int shutdown(int fd, int how)'),
  socket: lib.func('int socket(int domain, int type, int protocol)'),
  bind: lib.func('int bind(int fd, const void *addr, uint32_t len)'),
  listen: lib.func('int listen(int fd, int backlog)'),
  accept4: lib.func('int accept4(int fd, void *addr, void *addrlen, int flags)'),
};

// Scratch: msghdr | iovec | control | data. One per thread (each thread loads this module anew).
const MSG_OFF = 0;
const IOV_OFF = 64;
const CTRL_OFF = 128;
const CTRL_BYTES = cmsgSpace(MAX_FDS);
const DATA_OFF = 256;
const SCRATCH_BYTES = DATA_OFF + MAX_IO_BYTES;
let scratch: { addr: number; bytes: Uint8Array } | undefined;
function area(): { addr: number; bytes: Uint8Array } {
  if (!scratch) {
    const addr = libc.mmap(0, SCRATCH_BYTES, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS, -1, 0);
    scratch = { addr, bytes: new Uint8Array(libc.viewAddress(addr, SCRATCH_BYTES)) };
  }
  return scratch;
}

/** A connected AF_UNIX stream pair, both ends close-on-exec. */
export function socketpair(): [number, number] {
  const sv = new Int32Array(2);
  const r = c.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) as number;
  if (r < 0) throw new SysError('socketpair', koffi.errno());
  return [sv[0]!, sv[1]!];
}

/** Sets or clears FD_CLOEXEC (cleared: the fd survives exec into a child). */
export function setCloexec(fd: number, on: boolean): void {
  const cur = c.fcntl(fd, F_GETFD, 'int', 0) as number;
  if (cur < 0) throw new SysError('fcntl', koffi.errno(), 'F_GETFD');
  const next = on ? cur | FD_CLOEXEC : cur & ~FD_CLOEXEC;
  if ((c.fcntl(fd, F_SETFD, 'int', next) as number) < 0) throw new SysError('fcntl', koffi.errno(), 'F_SETFD');
}

export function getCloexec(fd: number): boolean {
  const cur = c.fcntl(fd, F_GETFD, 'int', 0) as number;
  if (cur < 0) throw new SysError('fcntl', koffi.errno(), 'F_GETFD');
  return (cur & FD_CLOEXEC) !== 0;
}

export function shutdown(fd: number, how = SHUT_RDWR): void {
  if ((c.shutdown(fd, how) as number) < 0) throw new SysError('shutdown', koffi.errno());
}

function prepare(len: number, controlLen: number): { addr: number; bytes: Uint8Array } {
  const s = area();
  s.bytes.fill(0, 0, DATA_OFF);
  iovec.encode(s.bytes, { iov_base: BigInt(s.addr + DATA_OFF), iov_len: BigInt(len) }, IOV_OFF);
  msghdr.encode(
    s.bytes,
    {
      msg_iov: BigInt(s.addr + IOV_OFF),
      msg_iovlen: 1n,
      msg_control: controlLen ? BigInt(s.addr + CTRL_OFF) : 0n,
      msg_controllen: BigInt(controlLen),
    },
    MSG_OFF,
  );
  return s;
}

/**
 * Sends `data` with `fds` attached (SCM_RIGHTS). Returns the bytes sent, or -1 when a
 * non-blocking send would block (EAGAIN). MSG_NOSIGNAL: a gone peer is EPIPE, not SIGPIPE.
 */
export function sendmsg(fd: number, data: Uint8Array, fds: readonly number[] = [], flags = MSG_DONTWAIT): number {
  if (data.length > MAX_IO_BYTES) throw new InvalidParameterError(`sendmsg: ${data.length} bytes, at most ${MAX_IO_BYTES}`);
  if (fds.length > MAX_FDS) throw new InvalidParameterError(`sendmsg: ${fds.length} fds, at most ${MAX_FDS}`);
  const s = prepare(data.length, fds.length ? cmsgSpace(fds.length) : 0);
  s.bytes.set(data, DATA_OFF);
  if (fds.length) {
    cmsghdr.encode(s.bytes, { cmsg_len: BigInt(cmsgLen(fds.length)), cmsg_level: SOL_SOCKET, cmsg_type: SCM_RIGHTS }, CTRL_OFF);
    const v = new DataView(s.bytes.buffer, s.bytes.byteOffset);
    fds.forEach((x, i) => v.setInt32(CTRL_OFF + cmsghdr.size + 4 * i, x, true));
  }
  for (;;) {
    const n = Number(c.sendmsg(fd, s.addr + MSG_OFF, flags | MSG_NOSIGNAL));
    if (n >= 0) return n;
    const e = koffi.errno();
    if (e === EINTR) continue;
    if (e === EAGAIN) return -1;
    throw new SysError('sendmsg', e);
  }
}

export interface Received {
  /** bytes read into the buffer; 0 at end of stream; -1 when nothing is there (EAGAIN) */
  bytes: number;
  /** descriptors that came with them (close-on-exec); the caller owns them */
  fds: number[];
}

/**
 * Reads up to `buf.length` bytes and any descriptors sent with them. Descriptors beyond
 * MAX_FDS are cut by the kernel (MSG_CTRUNC): that throws, after closing those that arrived.
 */
export function recvmsg(fd: number, buf: Uint8Array, flags = MSG_DONTWAIT): Received {
  const len = Math.min(buf.length, MAX_IO_BYTES);
  const s = prepare(len, CTRL_BYTES);
  let n: number;
  for (;;) {
    n = Number(c.recvmsg(fd, s.addr + MSG_OFF, flags | MSG_CMSG_CLOEXEC));
    if (n >= 0) break;
    const e = koffi.errno();
    if (e === EINTR) continue;
    if (e === EAGAIN) return { bytes: -1, fds: [] };
    throw new SysError('recvmsg', e);
  }
  buf.set(s.bytes.subarray(DATA_OFF, DATA_OFF + n));
  const h = msghdr.decode(s.bytes, MSG_OFF);
  const fds: number[] = [];
  const v = new DataView(s.bytes.buffer, s.bytes.byteOffset);
  const end = CTRL_OFF + Number(h.msg_controllen);
  for (let off = CTRL_OFF; off + cmsghdr.size <= end;) {
    const cm = cmsghdr.decode(s.bytes, off);
    const clen = Number(cm.cmsg_len);
    if (clen < cmsghdr.size || off + clen > end) break;
    if (cm.cmsg_level === SOL_SOCKET && cm.cmsg_type === SCM_RIGHTS) {
      for (let p = off + cmsghdr.size; p + 4 <= off + clen; p += 4) fds.push(v.getInt32(p, true));
    }
    off += align8(clen);
  }
  if (h.msg_flags & MSG_CTRUNC) {
    for (const x of fds) libc.close(x);
    throw new SysError('recvmsg', osConstants.errno.EMSGSIZE, `more than ${MAX_FDS} file descriptors in one message`);
  }
  return { bytes: n, fds };
}

/**
 * A listening AF_UNIX stream socket bound at `file` (relative paths are the caller's cwd's:
 * sun_path is short). Non-blocking and close-on-exec; `acceptUnix` takes its connections.
 */
export function listenUnix(file: string, backlog = 4): number {
  const path = new TextEncoder().encode(file);
  if (path.length === 0 || path.length >= SOCKADDR_UN.pathMax)
    throw new InvalidParameterError(`unix socket path ${JSON.stringify(file)}: 1 to ${SOCKADDR_UN.pathMax - 1} bytes`);
  const addr = new Uint8Array(SOCKADDR_UN.size);
  new DataView(addr.buffer).setUint16(SOCKADDR_UN.family, AF_UNIX, true);
  addr.set(path, SOCKADDR_UN.path);
  const fd = c.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0) as number;
  if (fd < 0) throw new SysError('socket', koffi.errno());
  try {
    if ((c.bind(fd, addr, SOCKADDR_UN.path + path.length + 1) as number) < 0) throw new SysError('bind', koffi.errno(), file);
    if ((c.listen(fd, backlog) as number) < 0) throw new SysError('listen', koffi.errno(), file);
  } catch (e) {
    libc.close(fd);
    throw e;
  }
  return fd;
}

/** The next connection on a listening socket (blocking, close-on-exec), or -1 when none waits. */
export function acceptUnix(fd: number): number {
  for (;;) {
    const r = c.accept4(fd, null, null, SOCK_CLOEXEC) as number;
    if (r >= 0) return r;
    const e = koffi.errno();
    if (e === EINTR) continue;
    if (e === EAGAIN) return -1;
    throw new SysError('accept4', e);
  }
}
