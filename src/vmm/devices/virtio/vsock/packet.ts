/**
 * virtio-vsock wire format (virtio 1.2 §5.10.6): every packet on the rx and tx queues starts
 * with struct virtio_vsock_hdr (44 bytes, packed, little-endian), followed by `len` payload
 * bytes for OP_RW.
 */
import { FormatError } from '../../../../errors.js';

/** struct virtio_vsock_hdr (packed). */
export const VSOCK_HDR = {
  size: 44,
  src_cid: 0,
  dst_cid: 8,
  src_port: 16,
  dst_port: 20,
  len: 24,
  type: 28,
  op: 30,
  flags: 32,
  buf_alloc: 36,
  fwd_cnt: 40,
} as const;
/** struct virtio_vsock_config: le64 guest_cid. */
export const VSOCK_CONFIG_SIZE = 8;
/** struct virtio_vsock_event: le32 id. */
export const VSOCK_EVENT_SIZE = 4;

export const VIRTIO_VSOCK_TYPE_STREAM = 1;
export const VIRTIO_VSOCK_OP_INVALID = 0;
export const VIRTIO_VSOCK_OP_REQUEST = 1;
export const VIRTIO_VSOCK_OP_RESPONSE = 2;
export const VIRTIO_VSOCK_OP_RST = 3;
export const VIRTIO_VSOCK_OP_SHUTDOWN = 4;
export const VIRTIO_VSOCK_OP_RW = 5;
export const VIRTIO_VSOCK_OP_CREDIT_UPDATE = 6;
export const VIRTIO_VSOCK_OP_CREDIT_REQUEST = 7;
export const VIRTIO_VSOCK_SHUTDOWN_RCV = 1;
export const VIRTIO_VSOCK_SHUTDOWN_SEND = 2;
export const VIRTIO_VSOCK_EVENT_TRANSPORT_RESET = 0;

/** The host's address (linux/vm_sockets.h). */
export const VMADDR_CID_HOST = 2;
/** Largest payload Linux puts in one packet (VIRTIO_VSOCK_MAX_PKT_BUF_SIZE). */
export const VSOCK_MAX_PKT_BUF_SIZE = 64 * 1024;

export interface VsockHeader {
  srcCid: bigint;
  dstCid: bigint;
  srcPort: number;
  dstPort: number;
  len: number;
  type: number;
  op: number;
  flags: number;
  bufAlloc: number;
  fwdCnt: number;
}

export function encodeHeader(h: VsockHeader, out = new Uint8Array(VSOCK_HDR.size)): Uint8Array {
  const v = new DataView(out.buffer, out.byteOffset, VSOCK_HDR.size);
  v.setBigUint64(VSOCK_HDR.src_cid, h.srcCid, true);
  v.setBigUint64(VSOCK_HDR.dst_cid, h.dstCid, true);
  v.setUint32(VSOCK_HDR.src_port, h.srcPort >>> 0, true);
  v.setUint32(VSOCK_HDR.dst_port, h.dstPort >>> 0, true);
  v.setUint32(VSOCK_HDR.len, h.len >>> 0, true);
  v.setUint16(VSOCK_HDR.type, h.type, true);
  v.setUint16(VSOCK_HDR.op, h.op, true);
  v.setUint32(VSOCK_HDR.flags, h.flags >>> 0, true);
  v.setUint32(VSOCK_HDR.buf_alloc, h.bufAlloc >>> 0, true);
  v.setUint32(VSOCK_HDR.fwd_cnt, h.fwdCnt >>> 0, true);
  return out;
}

export function decodeHeader(b: Uint8Array): VsockHeader {
  if (b.length < VSOCK_HDR.size)
    throw new FormatError(`vsock packet header: ${b.length} bytes, need ${VSOCK_HDR.size}`, 'ERR_VSOCK_PACKET');
  const v = new DataView(b.buffer, b.byteOffset, VSOCK_HDR.size);
  return {
    srcCid: v.getBigUint64(VSOCK_HDR.src_cid, true),
    dstCid: v.getBigUint64(VSOCK_HDR.dst_cid, true),
    srcPort: v.getUint32(VSOCK_HDR.src_port, true),
    dstPort: v.getUint32(VSOCK_HDR.dst_port, true),
    len: v.getUint32(VSOCK_HDR.len, true),
    type: v.getUint16(VSOCK_HDR.type, true),
    op: v.getUint16(VSOCK_HDR.op, true),
    flags: v.getUint32(VSOCK_HDR.flags, true),
    bufAlloc: v.getUint32(VSOCK_HDR.buf_alloc, true),
    fwdCnt: v.getUint32(VSOCK_HDR.fwd_cnt, true),
  };
}

/** A packet travelling to the guest (payload only for OP_RW). */
export interface VsockPacket {
  hdr: VsockHeader;
  payload?: Uint8Array;
}
