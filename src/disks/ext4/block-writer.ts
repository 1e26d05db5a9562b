/**
 * Writes whole blocks into the image file, coalescing physically adjacent blocks into one
 * large pwrite through a staging buffer (small files land next to each other on disk, so a
 * rootfs of many small files becomes a few large writes). Two staging buffers alternate so the
 * next one fills while the previous write is in flight; at most one write is in flight, so
 * writes reach the file in order and a reused block written later always wins.
 */
import type { FileHandle } from 'node:fs/promises';

const STAGE_BYTES = 4 << 20;

export class BlockWriter {
  private stage = Buffer.allocUnsafe(STAGE_BYTES);
  private spare = Buffer.allocUnsafe(STAGE_BYTES);
  private stageStart = -1;
  private stageBytes = 0;
  private inflight: Promise<void> | null = null;
  bytesWritten = 0;

  constructor(
    private readonly fh: FileHandle,
    private readonly blockSize: number,
  ) {}

  /** stages `data` (a multiple of the block size) for block `physical` */
  async write(physical: number, data: Uint8Array): Promise<void> {
    const pos = physical * this.blockSize;
    if (this.stageBytes > 0 && this.stageStart + this.stageBytes !== pos) await this.startFlush();
    let off = 0;
    while (off < data.length) {
      if (this.stageBytes === 0) this.stageStart = pos + off;
      const n = Math.min(data.length - off, STAGE_BYTES - this.stageBytes);
      this.stage.set(data.subarray(off, off + n), this.stageBytes);
      this.stageBytes += n;
      off += n;
      if (this.stageBytes === STAGE_BYTES) await this.startFlush();
    }
  }

  /** hands the staged bytes to a background write (after the previous one finished) */
  private async startFlush(): Promise<void> {
    if (this.inflight) await this.inflight;
    this.inflight = null;
    if (this.stageBytes === 0) return;
    const buf = this.stage;
    const len = this.stageBytes;
    const at = this.stageStart;
    this.stage = this.spare;
    this.spare = buf;
    this.stageBytes = 0;
    this.stageStart = -1;
    const p = this.writeAll(buf, len, at);
    // keep a rejection observed until someone awaits it
    p.catch(() => {});
    this.inflight = p;
  }

  private async writeAll(buf: Buffer, len: number, at: number): Promise<void> {
    let done = 0;
    while (done < len) {
      const { bytesWritten } = await this.fh.write(buf, done, len - done, at + done);
      done += bytesWritten;
    }
    this.bytesWritten += len;
  }

  /** everything staged is on its way to the file and every write has completed */
  async flush(): Promise<void> {
    await this.startFlush();
    if (this.inflight) await this.inflight;
    this.inflight = null;
  }
}
