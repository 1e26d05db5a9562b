/**
 * virtio-blk requests (virtio 1.2 §5.2.6), parsed apart from any I/O: the chain's readable
 * bytes start with struct virtio_blk_req's header (type, reserved/ioprio, sector) followed by
 * the data of OUT / DISCARD / WRITE_ZEROES; its writable bytes are the data of IN / GET_ID
 * followed by the one status byte. Parsing checks everything that can be checked without the
 * disk: sizes, sector bounds, segment counts and flags.
 */
import type { ChainBuffers } from './virtqueue.js';

export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;
export const VIRTIO_BLK_T_DISCARD = 11;
export const VIRTIO_BLK_T_WRITE_ZEROES = 13;

export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;

export const VIRTIO_BLK_ID_BYTES = 20;
export const SECTOR_SIZE = 512;
export const SECTOR_SHIFT = 9;

/** struct virtio_blk_outhdr: le32 type, le32 ioprio, le64 sector. */
export const VIRTIO_BLK_OUTHDR = { size: 16, type: 0, ioprio: 4, sector: 8 } as const;
/** struct virtio_blk_discard_write_zeroes: le64 sector, le32 num_sectors, le32 flags. */
export const VIRTIO_BLK_DWZ = { size: 16, sector: 0, num_sectors: 8, flags: 12 } as const;
export const VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP = 1;

/** A byte range of the disk. */
export interface Extent {
  offset: number;
  length: number;
}

export type BlockRequest =
  | { kind: 'in'; offset: number; length: number }
  | { kind: 'out'; offset: number; length: number }
  | { kind: 'flush' }
  | { kind: 'get-id' }
  | { kind: 'discard'; extents: Extent[] }
  | { kind: 'write-zeroes'; extents: Extent[]; unmap: boolean };

/** Status byte to report without doing anything, and why (for the log). */
export interface BlockRequestRefusal {
  status: typeof VIRTIO_BLK_S_IOERR | typeof VIRTIO_BLK_S_UNSUPP;
  reason: string;
}

export interface BlockLimits {
  /** disk size in 512-byte sectors */
  capacity: number;
  readOnly: boolean;
  /** DISCARD and WRITE_ZEROES were offered */
  discard: boolean;
  maxDiscardSectors: number;
  maxDiscardSeg: number;
  maxWriteZeroesSectors: number;
  maxWriteZeroesSeg: number;
}

/**
 * Parses a request; the chain must already hold a status byte (the caller checks that the
 * writable part is non-empty, since without it nothing can be reported at all).
 */
export function parseBlockRequest(buf: ChainBuffers, limits: BlockLimits): BlockRequest | BlockRequestRefusal {
  if (buf.readableLength < VIRTIO_BLK_OUTHDR.size)
    return { status: VIRTIO_BLK_S_IOERR, reason: `request header of ${buf.readableLength} bytes, need ${VIRTIO_BLK_OUTHDR.size}` };
  const h = new Uint8Array(VIRTIO_BLK_OUTHDR.size);
  buf.read(0, h);
  const hv = new DataView(h.buffer);
  const type = hv.getUint32(VIRTIO_BLK_OUTHDR.type, true);
  const sector = hv.getBigUint64(VIRTIO_BLK_OUTHDR.sector, true);
  const dataOut = buf.readableLength - VIRTIO_BLK_OUTHDR.size;
  const dataIn = buf.writableLength - 1;

  const range = (length: number, dir: string): { offset: number; length: number } | BlockRequestRefusal => {
    if (length % SECTOR_SIZE !== 0) return { status: VIRTIO_BLK_S_IOERR, reason: `${dir} of ${length} bytes is not whole sectors` };
    if (sector + BigInt(length >> SECTOR_SHIFT) > BigInt(limits.capacity)) {
      return {
        status: VIRTIO_BLK_S_IOERR,
        reason: `${dir} of ${length >> SECTOR_SHIFT} sectors at sector ${sector} is past the disk's ${limits.capacity}`,
      };
    }
    return { offset: Number(sector) * SECTOR_SIZE, length };
  };

  switch (type) {
    case VIRTIO_BLK_T_IN: {
      if (dataOut !== 0) return { status: VIRTIO_BLK_S_IOERR, reason: `read with ${dataOut} device-readable data bytes` };
      const r = range(dataIn, 'read');
      return 'status' in r ? r : { kind: 'in', ...r };
    }
    case VIRTIO_BLK_T_OUT: {
      if (limits.readOnly) return { status: VIRTIO_BLK_S_IOERR, reason: 'write to a read-only disk' };
      if (dataIn !== 0) return { status: VIRTIO_BLK_S_IOERR, reason: `write with ${dataIn} device-writable data bytes` };
      const r = range(dataOut, 'write');
      return 'status' in r ? r : { kind: 'out', ...r };
    }
    case VIRTIO_BLK_T_FLUSH:
      return { kind: 'flush' };
    case VIRTIO_BLK_T_GET_ID:
      if (dataIn < 1) return { status: VIRTIO_BLK_S_IOERR, reason: 'GET_ID without a buffer for the id' };
      return { kind: 'get-id' };
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES: {
      const discard = type === VIRTIO_BLK_T_DISCARD;
      const what = discard ? 'discard' : 'write-zeroes';
      if (!limits.discard) return { status: VIRTIO_BLK_S_UNSUPP, reason: `${what} not offered` };
      if (limits.readOnly) return { status: VIRTIO_BLK_S_IOERR, reason: `${what} on a read-only disk` };
      if (dataOut === 0 || dataOut % VIRTIO_BLK_DWZ.size !== 0)
        return { status: VIRTIO_BLK_S_IOERR, reason: `${what} with ${dataOut} bytes of segments` };
      const segs = dataOut / VIRTIO_BLK_DWZ.size;
      const maxSeg = discard ? limits.maxDiscardSeg : limits.maxWriteZeroesSeg;
      const maxSectors = discard ? limits.maxDiscardSectors : limits.maxWriteZeroesSectors;
      if (segs > maxSeg) return { status: VIRTIO_BLK_S_UNSUPP, reason: `${what} with ${segs} segments, at most ${maxSeg}` };
      const raw = new Uint8Array(dataOut);
      buf.read(VIRTIO_BLK_OUTHDR.size, raw);
      const v = new DataView(raw.buffer);
      const extents: Extent[] = [];
      let unmap = false;
      for (let i = 0; i < segs; i++) {
        const o = i * VIRTIO_BLK_DWZ.size;
        const s = v.getBigUint64(o + VIRTIO_BLK_DWZ.sector, true);
        const n = v.getUint32(o + VIRTIO_BLK_DWZ.num_sectors, true);
        const flags = v.getUint32(o + VIRTIO_BLK_DWZ.flags, true);
        // DISCARD has no flags; WRITE_ZEROES only UNMAP (§5.2.6.2: other flags -> UNSUPP).
        if (flags & ~(discard ? 0 : VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP))
          return { status: VIRTIO_BLK_S_UNSUPP, reason: `${what} segment ${i} with flags 0x${flags.toString(16)}` };
        if (n > maxSectors) return { status: VIRTIO_BLK_S_IOERR, reason: `${what} segment ${i} of ${n} sectors, at most ${maxSectors}` };
        if (s + BigInt(n) > BigInt(limits.capacity))
          return { status: VIRTIO_BLK_S_IOERR, reason: `${what} segment ${i} at sector ${s}+${n} is past the disk's ${limits.capacity}` };
        unmap ||= (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0;
        extents.push({ offset: Number(s) * SECTOR_SIZE, length: n * SECTOR_SIZE });
      }
      return discard ? { kind: 'discard', extents } : { kind: 'write-zeroes', extents, unmap };
    }
    default:
      return { status: VIRTIO_BLK_S_UNSUPP, reason: `request type ${type}` };
  }
}
