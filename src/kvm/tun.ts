/**
 * A tap device opened by name (linux/if_tun.h): the VM's network port. The tap itself is made
 * beforehand in the container's network namespace (`ip tuntap add`), and TUNSETIFF finds it in
 * the caller's namespace, so the caller runs there (the VM supervisor is started inside it).
 *
 * IFF_TAP | IFF_NO_PI | IFF_VNET_HDR with a 12-byte header (TUNSETVNETHDRSZ): each read or
 * write is one `virtio_net_hdr_v1` and one Ethernet frame, the very layout of a virtio-net
 * buffer; TUNSETOFFLOAD says which offloads (partial checksums, TSO) the reader takes, none
 * until the guest's driver has accepted them. Non-blocking: a read with nothing waiting is
 * EAGAIN (libc.read's -1).
 */
import * as libc from './libc.js';
import { _IOW } from './ioctl.js';
import { InvalidParameterError } from '../errors.js';

export const TUN_DEVICE = '/dev/net/tun';
/** _IOW('T', 202, int) */
export const TUNSETIFF = _IOW(0x54, 202, 4);
export const IFF_TAP = 0x0002;
export const IFF_NO_PI = 0x1000;
export const IFF_VNET_HDR = 0x4000;
/** _IOW('T', 208, unsigned int): the offloads the reader accepts (TUN_F_*) */
export const TUNSETOFFLOAD = _IOW(0x54, 208, 4);
/** _IOW('T', 216, int) */
export const TUNSETVNETHDRSZ = _IOW(0x54, 216, 4);
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
/** the header size the tap is set to: virtio_net_hdr_v1 (net.ts VIRTIO_NET_HDR.size) */
export const TAP_VNET_HDR_SIZE = 12;
export const O_NONBLOCK = 0o4000;
/** struct ifreq: char ifr_name[IFNAMSIZ]; union { short ifr_flags; ... } (40 bytes on x86_64). */
export const IFREQ = { size: 40, name: 0, flags: 16 } as const;
export const IFNAMSIZ = 16;

/** Opens the existing tap `name` for headed frames (non-blocking, close-on-exec, no offloads yet); returns its fd. */
export function openTap(name: string): number {
  const bytes = new TextEncoder().encode(name);
  if (bytes.length === 0 || bytes.length >= IFNAMSIZ || name.includes('/'))
    throw new InvalidParameterError(`tap device name ${JSON.stringify(name)}: 1 to ${IFNAMSIZ - 1} bytes`);
  const req = new Uint8Array(IFREQ.size);
  req.set(bytes, IFREQ.name);
  new DataView(req.buffer).setUint16(IFREQ.flags, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, true);
  const fd = libc.open(TUN_DEVICE, libc.O_RDWR | O_NONBLOCK);
  try {
    libc.ioctlPtr(fd, TUNSETIFF, req, `TUNSETIFF ${name}`);
    const size = new Int32Array([TAP_VNET_HDR_SIZE]);
    libc.ioctlPtr(fd, TUNSETVNETHDRSZ, new Uint8Array(size.buffer), 'TUNSETVNETHDRSZ');
    setTapOffload(fd, 0);
  } catch (e) {
    libc.close(fd);
    throw e;
  }
  return fd;
}

/** Which offloads (TUN_F_*) frames read from the tap may use: the guest's accepted ones. */
export function setTapOffload(fd: number, flags: number): void {
  libc.ioctl(fd, TUNSETOFFLOAD, flags, 'TUNSETOFFLOAD');
}
