/**
 * virtio-rng (virtio 1.2 §5.4, "Entropy Device"): one request queue; every device-writable
 * buffer the driver posts is filled from the host's CSPRNG. No configuration, no features.
 */
import { randomFillSync } from 'node:crypto';
import type { ChainBuffers } from './virtqueue.js';
import { serveQueue, VIRTIO_ID_RNG, type ActivateContext, type VirtioDevice } from './mmio.js';

export const RNG_QUEUE_SIZE = 256;
/** Bytes handed out per chain at most (bounded work per notification; Linux asks for <= 64). */
export const RNG_MAX_CHAIN_BYTES = 64 * 1024;

export class RngDevice implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_RNG;
  readonly features = 0n;
  readonly queueMaxSizes = [RNG_QUEUE_SIZE];
  readonly configSize = 0;
  bytesServed = 0;
  private ctx?: ActivateContext;

  constructor(private readonly log?: (line: string) => void) {}

  readConfig(): void {}
  writeConfig(): void {}

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
      (buf) => this.fill(buf),
      (e) => this.log?.(`virtio-rng: ${e.message}`),
    );
  }

  /** Fills the chain's writable buffers, at most RNG_MAX_CHAIN_BYTES; returns the bytes written. */
  private fill(buf: ChainBuffers): number {
    let left = RNG_MAX_CHAIN_BYTES;
    let n = 0;
    for (const w of buf.writable) {
      const take = Math.min(w.length, left);
      if (take === 0) break;
      randomFillSync(w, 0, take);
      left -= take;
      n += take;
    }
    this.bytesServed += n;
    return n;
  }
}
