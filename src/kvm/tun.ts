/**
 * A tap device opened by name (linux/if_tun.h): the VM's network port. The tap itself is made
 * beforehand in the container's network namespace (`ip tuntap add`), and TUNSETIFF finds it in
 * the caller's namespace, so the caller runs there (the VM supervisor is started inside it).
 *
 * IFF_TAP | IFF_NO_PI and no IFF_VNET_HDR: each read or write is exactly one Ethernet frame;
 * with no offloads set (TUNSETOFFLOAD) the kernel hands over finished checksums and segments.
 * Non-blocking: a read with nothing waiting is EAGAIN (libc.read's -1).
 */
import * as libc from './libc.js';
import { _IOW } from './ioctl.js';
import { InvalidParameterError } from '../errors.js';

export const TUN_DEVICE = '/dev/net/tun';
/** _IOW('T', 202, int) */
export const TUNSETIFF = _IOW(0x54, 202, 4);
export const IFF_TAP = 0x0002;
export const IFF_NO_PI = 0x1000;
export const O_NONBLOCK = 0o4000;
/** struct ifreq: char ifr_name[IFNAMSIZ]; union { short ifr_flags; ... } (40 bytes on x86_64). */
export const IFREQ = { size: 40, name: 0, flags: 16 } as const;
export const IFNAMSIZ = 16;

/** Opens the existing tap `name` for frames (non-blocking, close-on-exec); returns its fd. */
export function openTap(name: string): number {
  const bytes = new TextEncoder().encode(name);
  if (bytes.length === 0 || bytes.length >= IFNAMSIZ || name.includes('/')) throw new InvalidParameterError(`tap device name ${JSON.stringify(name)}: 1 to ${IFNAMSIZ - 1} bytes`);
  const req = new Uint8Array(IFREQ.size);
  req.set(bytes, IFREQ.name);
  new DataView(req.buffer).setUint16(IFREQ.flags, IFF_TAP | IFF_NO_PI, true);
  const fd = libc.open(TUN_DEVICE, libc.O_RDWR | O_NONBLOCK);
  try {
    libc.ioctlPtr(fd, TUNSETIFF, req, `TUNSETIFF ${name}`);
  } catch (e) {
    libc.close(fd);
    throw e;
  }
  return fd;
}
