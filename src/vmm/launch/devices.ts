/**
 * The guest's devices, the same on every backend: virtio-blk over the container's qcow2
 * overlay (its backing file is the image's shared base disk, opened read-only by the qcow2
 * layer and never written), virtio-vsock behind the Firecracker-style unix-socket muxer (the
 * agent channel), virtio-rng. The kvm backend places them on its own virtio-mmio transport;
 * the tcg backend serves them to QEMU over vhost-user.
 */
import { openDiskImage } from '../../disks/disk-image.js';
import type { SyncBlockBackend } from '../../disks/block-backend.js';
import { BlockDevice } from '../devices/virtio/block.js';
import { RngDevice } from '../devices/virtio/rng.js';
import { VsockDevice } from '../devices/virtio/vsock/device.js';
import { VsockMuxer } from '../devices/virtio/vsock/muxer.js';
import { NetDevice, parseMac } from '../devices/virtio/net.js';
import { TapPort } from '../devices/virtio/net-tap.js';
import type { NotifyPoller } from '../devices/virtio/notify-poller.js';
import { openTap } from '../../kvm/tun.js';

export interface GuestDevicesOptions {
  /** the container's qcow2 overlay */
  disk: string;
  /** virtio-blk serial (GET_ID), at most 20 bytes */
  diskId: string;
  cid: bigint;
  /** where host processes reach guest vsock ports (`CONNECT <port>\n`) */
  vsockUds: string;
  /** the guest's NIC: a tap (already made, in this process's network namespace) and its MAC */
  net?: { tap: string; mac: string; poller: NotifyPoller };
  log?: (line: string) => void;
}

export interface GuestDevices {
  blk: BlockDevice;
  vsock: VsockDevice;
  rng: RngDevice;
  muxer: VsockMuxer;
  net?: NetDevice;
  /** stops the muxer and flushes and closes the disk; idempotent */
  close(): Promise<void>;
}

export async function openGuestDevices(o: GuestDevicesOptions): Promise<GuestDevices> {
  // the format is named: the overlay is guest-written, and detection must never read its bytes
  const disk: SyncBlockBackend = await openDiskImage(o.disk, { readOnly: false, format: 'qcow2' });
  const muxer = new VsockMuxer({ udsPath: o.vsockUds, ...(o.log && { log: (l) => o.log!(`vsock: ${l}`) }) });
  try {
    await muxer.listen();
  } catch (e) {
    disk.closeSync();
    throw e;
  }
  let net: NetDevice | undefined;
  try {
    if (o.net) {
      parseMac(o.net.mac); // before the tap is opened: nothing to undo
      const port = new TapPort(openTap(o.net.tap), o.net.poller, o.log);
      net = new NetDevice({ port, mac: o.net.mac, ...(o.log && { log: o.log }) });
    }
  } catch (e) {
    await muxer.close();
    disk.closeSync();
    throw e;
  }
  let closed: Promise<void> | undefined;
  return {
    blk: new BlockDevice({ backend: disk, id: o.diskId, ...(o.log && { log: o.log }) }),
    vsock: new VsockDevice(o.cid, muxer, o.log),
    rng: new RngDevice(),
    muxer,
    ...(net && { net }),
    close() {
      closed ??= (async () => {
        try {
          net?.close();
          await muxer.close();
        } finally {
          disk.flushSync();
          disk.closeSync();
        }
      })();
      return closed;
    },
  };
}
