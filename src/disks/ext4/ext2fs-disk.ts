/**
 * The ext2fs package (libext2fs in WASM) reads and writes its filesystem through an Ext2Disk.
 * These adapt our BlockBackends (raw, qcow2) to it: one passes writes through (offline edits of
 * a stopped container's disk), one keeps them in memory (libext2fs opens read-write even to
 * read, and a reader must never change the image).
 */
import type { Ext2Disk } from './ext2fs.js';
import type { BlockBackend } from '../block-backend.js';

const SECTOR = 512;

/** Requests libext2fs makes past the end (it probes the last block) read as zeros. */
async function readClamped(disk: BlockBackend, buffer: Buffer, bufferOffset: number, length: number, fileOffset: number): Promise<void> {
  const inside = Math.max(0, Math.min(length, disk.size - fileOffset));
  if (inside > 0) await disk.read(buffer.subarray(bufferOffset, bufferOffset + inside), fileOffset);
  if (inside < length) buffer.fill(0, bufferOffset + inside, bufferOffset + length);
}

export class PassThroughDisk implements Ext2Disk {
  constructor(private readonly disk: BlockBackend) {}

  async read(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number): Promise<{ bytesRead: number; buffer: Buffer }> {
    await readClamped(this.disk, buffer, bufferOffset, length, fileOffset);
    return { bytesRead: length, buffer };
  }

  async write(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number): Promise<{ bytesWritten: number; buffer: Buffer }> {
    await this.disk.write(buffer.subarray(bufferOffset, bufferOffset + length), fileOffset);
    return { bytesWritten: length, buffer };
  }

  async discard(offset: number, length: number): Promise<void> {
    await this.disk.discard(offset, length);
  }

  async flush(): Promise<void> {
    await this.disk.flush();
  }
}

/** Read-only view with a copy-on-write overlay in memory, in 512-byte sectors. */
export class OverlayDisk implements Ext2Disk {
  private readonly written = new Map<number, Buffer>();
  constructor(private readonly disk: BlockBackend) {}

  async read(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number): Promise<{ bytesRead: number; buffer: Buffer }> {
    await readClamped(this.disk, buffer, bufferOffset, length, fileOffset);
    if (this.written.size > 0) {
      const first = Math.floor(fileOffset / SECTOR);
      const last = Math.floor((fileOffset + length - 1) / SECTOR);
      for (let s = first; s <= last; s++) {
        const w = this.written.get(s);
        if (!w) continue;
        const from = Math.max(s * SECTOR, fileOffset);
        const to = Math.min((s + 1) * SECTOR, fileOffset + length);
        w.copy(buffer, bufferOffset + (from - fileOffset), from - s * SECTOR, to - s * SECTOR);
      }
    }
    return { bytesRead: length, buffer };
  }

  async write(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number): Promise<{ bytesWritten: number; buffer: Buffer }> {
    const first = Math.floor(fileOffset / SECTOR);
    const last = Math.floor((fileOffset + length - 1) / SECTOR);
    for (let s = first; s <= last; s++) {
      let sec = this.written.get(s);
      if (!sec) {
        sec = Buffer.alloc(SECTOR);
        await this.read(sec, 0, SECTOR, s * SECTOR);
        this.written.set(s, sec);
      }
      const from = Math.max(s * SECTOR, fileOffset);
      const to = Math.min((s + 1) * SECTOR, fileOffset + length);
      buffer.copy(sec, from - s * SECTOR, bufferOffset + (from - fileOffset), bufferOffset + (to - fileOffset));
    }
    return { bytesWritten: length, buffer };
  }

  async discard(): Promise<void> {}
  async flush(): Promise<void> {}
}
