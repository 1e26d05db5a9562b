/**
 * Writes whole blocks into the image file, coalescing physically adjacent blocks into one
 * large pwrite through a staging buffer (small files land next to each other on disk, so a
 * rootfs of many small files becomes a few large writes). Callers await each call, which keeps
 * writes in order: a reused block written later always wins.
 */
import type { FileHandle } from 'node:fs/promises';

const STAGE_BYTES = 4 << 20;

export class BlockWriter {
  private readonly stage = Buffer.allocUnsafe(STAGE_BYTES);
  private stageStart = -1;
  private stageBytes = 0;
  bytesWritten = 0;

  constructor(
    private readonly fh: FileHandle,
    private readonly blockSize: number,
  ) {}

  /** queues `data` (a multiple of the block size) for block `physical`; resolves when staged */
  async write(physical: number, data: Uint8Array): Promise<void> {
    const pos = physical * this.blockSize;
    if (this.stageBytes > 0 && this.stageStart + this.stageBytes !== pos) await this.flush();
    let off = 0;
    while (off < data.length) {
      if (this.stageBytes === 0) this.stageStart = pos + off;
      const n = Math.min(data.length - off, STAGE_BYTES - this.stageBytes);
      this.stage.set(data.subarray(off, off + n), this.stageBytes);
      this.stageBytes += n;
      off += n;
      if (this.stageBytes === STAGE_BYTES) await this.flush();
    }
  }

  async flush(): Promise<void> {
    let done = 0;
    while (done < this.stageBytes) {
      const { bytesWritten } = await this.fh.write(this.stage, done, this.stageBytes - done, this.stageStart + done);
      done += bytesWritten;
    }
    this.bytesWritten += this.stageBytes;
    this.stageBytes = 0;
    this.stageStart = -1;
  }
}
