/**
 * Carries a layer body from its socket (blob-fetch.ts) to the blob file and the layer
 * inspection with a single copy: bytes are gathered into message buffers, and each full one
 * is appended to the file and then given up to the inspection (moved to a worker thread, or
 * inspected inline and reused).
 */
import type { BlobFile } from './blob-store.js';
import { messageBuffer, type LayerInspection } from './inspect-pool.js';

/** a buffer is shipped once this full (its capacity is a little more, so a read rarely splits) */
export const SHIP_BYTES = 1 << 20;
/** buffers written or inspected but not yet done before the socket is paused */
export const MAX_QUEUED = 2;

export class LayerBodySink {
  private buf: Buffer | undefined;
  private used = 0;
  private tail: Promise<void> = Promise.resolve();
  private queued = 0;

  constructor(
    private readonly file: BlobFile,
    private readonly inspection: LayerInspection,
  ) {}

  /**
   * Takes the next bytes (a view, valid only during the call); throws past the blob's expected
   * size. A promise means: read no more until it settles (it rejects with the first failure).
   */
  push(chunk: Buffer): Promise<void> | undefined {
    this.file.count(chunk);
    let off = 0;
    while (off < chunk.length) {
      this.buf ??= messageBuffer();
      const n = chunk.copy(this.buf, this.used, off);
      this.used += n;
      off += n;
      if (this.used >= SHIP_BYTES || this.used === this.buf.length) this.ship();
    }
    return this.queued >= MAX_QUEUED ? this.tail : undefined;
  }

  private ship(): void {
    if (!this.buf || this.used === 0) return;
    const b = this.buf.subarray(0, this.used);
    this.buf = undefined;
    this.used = 0;
    this.queued++;
    // the file write comes first: once given up, the buffer belongs to the inspection
    this.tail = this.tail
      .then(() => this.file.write([b]))
      .then(() => this.inspection.writeOwned(b))
      .finally(() => void this.queued--);
    // the chain only orders the work: each caller awaits its own promise and gets its own error
    this.tail.catch(() => {});
  }

  /** The body ended: ships what is left and waits until all was written and inspected. */
  async end(): Promise<void> {
    this.ship();
    await this.tail;
  }
}
