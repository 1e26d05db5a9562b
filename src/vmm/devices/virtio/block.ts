/**
 * virtio-blk (virtio 1.2 §5.2) over a SyncBlockBackend (raw file or qcow2 image). One request
 * queue; each request runs to completion when the queue is notified, with positional sync I/O
 * straight between the disk file and guest memory (no bounce buffer). Requests the parser
 * refuses complete with IOERR/UNSUPP and never reach the backend; backend failures complete
 * with IOERR and are logged.
 */
import type { SyncBlockBackend } from '../../../disks/block-backend.js';
import { InvalidParameterError } from '../../../errors.js';
import type { ChainBuffers } from './virtqueue.js';
import { bit, serveQueue, VIRTIO_ID_BLOCK, type ActivateContext, type VirtioDevice } from './mmio.js';
import {
  parseBlockRequest,
  SECTOR_SIZE,
  VIRTIO_BLK_OUTHDR,
  VIRTIO_BLK_ID_BYTES,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  type BlockLimits,
  type BlockRequest,
} from './block-request.js';

// Feature bits (virtio_blk.h).
export const VIRTIO_BLK_F_SIZE_MAX = 1;
export const VIRTIO_BLK_F_SEG_MAX = 2;
export const VIRTIO_BLK_F_RO = 5;
export const VIRTIO_BLK_F_BLK_SIZE = 6;
export const VIRTIO_BLK_F_FLUSH = 9;
export const VIRTIO_BLK_F_DISCARD = 13;
export const VIRTIO_BLK_F_WRITE_ZEROES = 14;

/** struct virtio_blk_config up to write_zeroes_may_unmap and its padding (Linux 6.1 uapi). */
export const VIRTIO_BLK_CONFIG = {
  size: 60,
  capacity: 0,
  size_max: 8,
  seg_max: 12,
  geometry: 16,
  blk_size: 20,
  physical_block_exp: 24,
  alignment_offset: 25,
  min_io_size: 26,
  opt_io_size: 28,
  wce: 32,
  num_queues: 34,
  max_discard_sectors: 36,
  max_discard_seg: 40,
  discard_sector_alignment: 44,
  max_write_zeroes_sectors: 48,
  max_write_zeroes_seg: 52,
  write_zeroes_may_unmap: 56,
} as const;

export const BLOCK_QUEUE_SIZE = 256;
/** Segments per discard/write-zeroes request we accept (Linux sends up to max_discard_seg). */
export const MAX_DISCARD_SEG = 32;
/** Largest single discard/write-zeroes segment: 1 GiB in sectors (bounded work per request). */
export const MAX_DISCARD_SECTORS = (1024 * 1024 * 1024) / SECTOR_SIZE;

export interface BlockDeviceOptions {
  backend: SyncBlockBackend;
  /** the disk's serial for GET_ID (up to 20 bytes, e.g. the container id prefix) */
  id?: string;
  /** expose read-only even when the backend is writable */
  readOnly?: boolean;
  log?: (line: string) => void;
}

export interface BlockStats {
  reads: number;
  writes: number;
  flushes: number;
  discards: number;
  writeZeroes: number;
  errors: number;
  refused: number;
  bytesRead: number;
  bytesWritten: number;
}

export class BlockDevice implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_BLOCK;
  readonly features: bigint;
  readonly queueMaxSizes = [BLOCK_QUEUE_SIZE];
  readonly configSize = VIRTIO_BLK_CONFIG.size;
  readonly stats: BlockStats = {
    reads: 0,
    writes: 0,
    flushes: 0,
    discards: 0,
    writeZeroes: 0,
    errors: 0,
    refused: 0,
    bytesRead: 0,
    bytesWritten: 0,
  };
  private readonly config = new Uint8Array(VIRTIO_BLK_CONFIG.size);
  private readonly limits: BlockLimits;
  private readonly idBytes = new Uint8Array(VIRTIO_BLK_ID_BYTES);
  private ctx?: ActivateContext;

  constructor(private readonly opts: BlockDeviceOptions) {
    const b = opts.backend;
    if (b.size % SECTOR_SIZE !== 0) throw new InvalidParameterError(`virtio-blk: disk size ${b.size} is not a multiple of ${SECTOR_SIZE}`);
    const id = new TextEncoder().encode(opts.id ?? '');
    if (id.length > VIRTIO_BLK_ID_BYTES)
      throw new InvalidParameterError(`virtio-blk: id "${opts.id}" is longer than ${VIRTIO_BLK_ID_BYTES} bytes`);
    this.idBytes.set(id);
    const readOnly = b.readOnly || (opts.readOnly ?? false);
    const discard = !readOnly && b.discardGranularity > 0;
    this.limits = {
      capacity: b.size / SECTOR_SIZE,
      readOnly,
      discard,
      maxDiscardSectors: MAX_DISCARD_SECTORS,
      maxDiscardSeg: MAX_DISCARD_SEG,
      maxWriteZeroesSectors: MAX_DISCARD_SECTORS,
      maxWriteZeroesSeg: MAX_DISCARD_SEG,
    };
    let f = bit(VIRTIO_BLK_F_SEG_MAX) | bit(VIRTIO_BLK_F_BLK_SIZE) | bit(VIRTIO_BLK_F_FLUSH);
    if (readOnly) f |= bit(VIRTIO_BLK_F_RO);
    if (discard) f |= bit(VIRTIO_BLK_F_DISCARD) | bit(VIRTIO_BLK_F_WRITE_ZEROES);
    this.features = f;

    const v = new DataView(this.config.buffer);
    v.setBigUint64(VIRTIO_BLK_CONFIG.capacity, BigInt(this.limits.capacity), true);
    // Header and status take a descriptor each (Linux: seg_max = queue size - 2).
    v.setUint32(VIRTIO_BLK_CONFIG.seg_max, BLOCK_QUEUE_SIZE - 2, true);
    v.setUint32(VIRTIO_BLK_CONFIG.blk_size, SECTOR_SIZE, true);
    if (discard) {
      v.setUint32(VIRTIO_BLK_CONFIG.max_discard_sectors, MAX_DISCARD_SECTORS, true);
      v.setUint32(VIRTIO_BLK_CONFIG.max_discard_seg, MAX_DISCARD_SEG, true);
      v.setUint32(VIRTIO_BLK_CONFIG.discard_sector_alignment, b.discardGranularity / SECTOR_SIZE, true);
      v.setUint32(VIRTIO_BLK_CONFIG.max_write_zeroes_sectors, MAX_DISCARD_SECTORS, true);
      v.setUint32(VIRTIO_BLK_CONFIG.max_write_zeroes_seg, MAX_DISCARD_SEG, true);
      this.config[VIRTIO_BLK_CONFIG.write_zeroes_may_unmap] = 1;
    }
  }

  get readOnly(): boolean {
    return this.limits.readOnly;
  }

  readConfig(offset: number, data: Uint8Array): void {
    data.set(this.config.subarray(offset, offset + data.length));
  }

  writeConfig(): void {
    // Only `wce` is driver-writable, and only with VIRTIO_BLK_F_CONFIG_WCE, which we do not offer.
    this.opts.log?.('virtio-blk: config write ignored');
  }

  activate(ctx: ActivateContext): void {
    this.ctx = ctx;
  }

  reset(): void {
    this.ctx = undefined;
  }

  notify(index: number): void {
    const ctx = this.ctx;
    if (!ctx || index !== 0) return;
    serveQueue(
      ctx,
      0,
      (buf) => this.process(buf),
      (e) => {
        this.opts.log?.(`virtio-blk: ${e.message}`);
        this.stats.refused++;
      },
    );
  }

  /** Runs one request; returns the bytes written into the chain (data + status). */
  private process(buf: ChainBuffers): number {
    if (buf.writableLength < 1) {
      this.opts.log?.('virtio-blk: request without a status byte');
      this.stats.refused++;
      return 0;
    }
    const statusAt = buf.writableLength - 1;
    const req = parseBlockRequest(buf, this.limits);
    if ('status' in req) {
      this.opts.log?.(`virtio-blk: ${req.reason}`);
      this.stats.refused++;
      buf.write(statusAt, Uint8Array.of(req.status));
      return 1;
    }
    let written = 0;
    let status: number = VIRTIO_BLK_S_OK;
    try {
      written = this.execute(req, buf);
    } catch (e) {
      this.opts.log?.(`virtio-blk: ${req.kind} failed: ${(e as Error).message}`);
      this.stats.errors++;
      status = VIRTIO_BLK_S_IOERR;
    }
    buf.write(statusAt, Uint8Array.of(status));
    return written + 1;
  }

  private execute(req: BlockRequest, buf: ChainBuffers): number {
    const disk = this.opts.backend;
    switch (req.kind) {
      case 'in': {
        let off = req.offset;
        for (const seg of segments(buf.writable, 0, req.length)) {
          disk.readSync(seg, off);
          off += seg.length;
        }
        this.stats.reads++;
        this.stats.bytesRead += req.length;
        return req.length;
      }
      case 'out': {
        let off = req.offset;
        for (const seg of segments(buf.readable, VIRTIO_BLK_OUTHDR.size, req.length)) {
          disk.writeSync(seg, off);
          off += seg.length;
        }
        this.stats.writes++;
        this.stats.bytesWritten += req.length;
        return 0;
      }
      case 'flush':
        disk.flushSync();
        this.stats.flushes++;
        return 0;
      case 'get-id': {
        const n = Math.min(VIRTIO_BLK_ID_BYTES, buf.writableLength - 1);
        buf.write(0, this.idBytes.subarray(0, n));
        return n;
      }
      case 'discard':
        for (const e of req.extents) disk.discardSync(e.offset, e.length);
        this.stats.discards++;
        return 0;
      case 'write-zeroes':
        for (const e of req.extents) disk.writeZeroesSync(e.offset, e.length);
        this.stats.writeZeroes++;
        return 0;
    }
  }
}

/** Views of `length` bytes starting at `start` across a list of buffers. */
function* segments(bufs: readonly Uint8Array[], start: number, length: number): Generator<Uint8Array> {
  let skip = start;
  let left = length;
  for (const b of bufs) {
    if (left === 0) return;
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    const n = Math.min(b.length - skip, left);
    yield b.subarray(skip, skip + n);
    left -= n;
    skip = 0;
  }
}
