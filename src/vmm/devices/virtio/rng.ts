/**
 * virtio-rng (virtio 1.2 §5.4, "Entropy Device"): one request queue; every device-writable
 * buffer the driver posts is filled from the host's CSPRNG. No configuration, no features.
 */
import { randomFillSync } from 'node:crypto';
import { ChainBuffers } from './virtqueue.js';
import { VIRTIO_ID_RNG, type ActivateContext, type VirtioDevice } from './mmio.js';

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
    const q = ctx.queues[0]!;
    let done = 0;
    for (let c = q.pop(ctx.memory); c; c = q.pop(ctx.memory)) {
      done++;
      if (c.error) {
        this.log?.(`virtio-rng: ${c.error.message}`);
        q.addUsed(ctx.memory, c.head, 0);
        continue;
      }
      const buf = new ChainBuffers(ctx.memory, c.descriptors);
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
      q.addUsed(ctx.memory, c.head, n);
    }
    if (done) ctx.signalUsed(0);
  }
}
