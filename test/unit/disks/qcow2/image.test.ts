/**
 * Qcow2Image state machine on small temp files (no QEMU tools): read-through, allocation,
 * discard and cluster reuse, write-back ordering, failure and closed states.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Qcow2Image } from '../../../../src/disks/qcow2/image.js';
import { checkQcow2 } from '../../../../src/disks/qcow2/check.js';
import { NodeFileIo, type FileIo } from '../../../../src/disks/raw.js';
import { TvmError } from '../../../../src/errors.js';

const dir = mkdtempSync(path.join(tmpdir(), 'tvm-qcow2-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const CS = 65536;

function setup(baseSize = 3 * CS + 100, size = 8 * CS): { image: string; base: Buffer } {
  const d = path.join(dir, String(n++));
  mkdirSync(d, { recursive: true });
  const base = Buffer.alloc(baseSize);
  for (let i = 0; i < baseSize; i++) base[i] = (i * 31 + 7) & 0xff;
  writeFileSync(path.join(d, 'base.raw'), base);
  const image = path.join(d, 'o.qcow2');
  Qcow2Image.createSync(image, { size, backingFile: 'base.raw' }).closeSync();
  return { image, base };
}

/** Records every pwrite/fsync, and can fail the k-th pwrite. */
class RecordingIo implements FileIo {
  ops: string[] = [];
  failAt = -1;
  private writes = 0;
  constructor(private readonly inner: FileIo) {}
  get path() {
    return this.inner.path;
  }
  pread(b: Uint8Array, p: number) {
    return this.inner.pread(b, p);
  }
  pwrite(b: Uint8Array, p: number) {
    if (this.writes++ === this.failAt) throw new Error('EIO (injected)');
    this.ops.push(`w${b.length}@${p}`);
    this.inner.pwrite(b, p);
  }
  fsync() {
    this.ops.push('sync');
    this.inner.fsync();
  }
  size() {
    return this.inner.size();
  }
  truncate(l: number) {
    this.inner.truncate(l);
  }
  close() {
    this.inner.close();
  }
}

describe('Qcow2Image', () => {
  it('reads through to the backing file and zeros past its end', () => {
    const { image, base } = setup();
    const img = Qcow2Image.openSync(image, { readOnly: true });
    const b = Buffer.alloc(2 * CS);
    img.readSync(b, 2 * CS);
    expect(b.subarray(0, CS + 100).equals(base.subarray(2 * CS))).toBe(true);
    expect(b.subarray(CS + 100).every((x) => x === 0)).toBe(true);
    img.closeSync();
  });

  it('copies the rest of a partially written cluster from the backing file', () => {
    const { image, base } = setup();
    const img = Qcow2Image.openSync(image);
    img.writeSync(Buffer.alloc(10, 0xee), CS + 5);
    const b = Buffer.alloc(CS);
    img.readSync(b, CS);
    const want = Buffer.from(base.subarray(CS, 2 * CS));
    want.fill(0xee, 5, 15);
    expect(b.equals(want)).toBe(true);
    img.closeSync();
    expect(checkQcow2(image)).toMatchObject({ corruptions: [], leaks: 0 });
  });

  it('writes metadata only at flush, in order: refcounts, sync, L2, sync, L1, sync', () => {
    const { image } = setup();
    let rec: RecordingIo | undefined;
    const img = Qcow2Image.openSync(image, { openFile: (p, ro) => (rec = new RecordingIo(NodeFileIo.open(p, { readOnly: ro }))) });
    img.writeSync(Buffer.alloc(CS, 1), 0);
    expect(rec!.ops).toEqual([`w${CS}@${5 * CS}`]); // data only: L2 table at cluster 4, data at 5
    img.flushSync();
    expect(rec!.ops.slice(1)).toEqual([`w${CS}@${2 * CS}`, 'sync', `w${CS}@${4 * CS}`, 'sync', `w8@${3 * CS}`, 'sync']);
    rec!.ops = [];
    img.writeSync(Buffer.alloc(512, 2), 100); // in place: no metadata
    img.flushSync();
    expect(rec!.ops).toEqual(['w512@' + (5 * CS + 100), 'sync']);
    img.closeSync();
  });

  it('discard frees clusters only after the L2 update is durable, then reuses them', () => {
    const { image } = setup();
    const img = Qcow2Image.openSync(image);
    img.writeSync(Buffer.alloc(2 * CS, 3), 0);
    img.flushSync();
    const sizeBefore = statSync(image).size;
    img.discardSync(0, 2 * CS);
    const z = Buffer.alloc(2 * CS, 9);
    img.readSync(z, 0);
    expect(z.every((x) => x === 0)).toBe(true); // zero flag hides the backing file
    img.writeSync(Buffer.alloc(CS, 4), 4 * CS); // before the flush: must not reuse the discarded clusters
    img.flushSync();
    expect(statSync(image).size).toBe(sizeBefore + CS);
    img.writeSync(Buffer.alloc(CS, 5), 6 * CS); // after: reuses a freed cluster, file does not grow
    img.closeSync();
    expect(statSync(image).size).toBe(sizeBefore + CS);
    expect(checkQcow2(image)).toMatchObject({ corruptions: [], leaks: 0 });
  });

  it('an I/O error poisons the image: later requests fail and close writes no metadata', () => {
    const { image } = setup();
    let rec: RecordingIo | undefined;
    const img = Qcow2Image.openSync(image, { openFile: (p, ro) => (rec = new RecordingIo(NodeFileIo.open(p, { readOnly: ro }))) });
    rec!.failAt = 0;
    expect(() => img.writeSync(Buffer.alloc(CS, 1), 0)).toThrow(/EIO/);
    expect(() => img.readSync(Buffer.alloc(1), 0)).toThrow(TvmError);
    try {
      img.readSync(Buffer.alloc(1), 0);
    } catch (e) {
      expect((e as TvmError).code).toBe('ERR_QCOW2_FAILED');
    }
    img.closeSync();
    expect(rec!.ops).toEqual([]);
    expect(checkQcow2(image)).toMatchObject({ corruptions: [], leaks: 0 });
  });

  it('rejects out-of-range, read-only and closed use with typed errors', () => {
    const { image } = setup();
    const img = Qcow2Image.openSync(image, { readOnly: true });
    expect(() => img.readSync(Buffer.alloc(2), 8 * CS - 1)).toThrow(expect.objectContaining({ code: 'ERR_BLOCK_RANGE' }));
    expect(() => img.readSync(Buffer.alloc(1), -1)).toThrow(expect.objectContaining({ code: 'ERR_BLOCK_RANGE' }));
    expect(() => img.writeSync(Buffer.alloc(1), 0)).toThrow(expect.objectContaining({ code: 'ERR_BLOCK_READ_ONLY' }));
    expect(() => img.discardSync(0, CS)).toThrow(expect.objectContaining({ code: 'ERR_BLOCK_READ_ONLY' }));
    img.closeSync();
    img.closeSync();
    expect(() => img.readSync(Buffer.alloc(1), 0)).toThrow(expect.objectContaining({ code: 'ERR_DISK_CLOSED' }));
  });

  it('create refuses bad parameters before touching the disk', () => {
    const d = path.join(dir, 'bad');
    mkdirSync(d, { recursive: true });
    expect(() => Qcow2Image.createSync(path.join(d, 'a.qcow2'), { size: CS, clusterBits: 8 })).toThrow(/clusterBits 8/);
    expect(() => Qcow2Image.createSync(path.join(d, 'a.qcow2'), { size: CS, refcountOrder: 7 })).toThrow(/refcountOrder 7/);
    expect(() => Qcow2Image.createSync(path.join(d, 'a.qcow2'), { size: 0 })).toThrow(/positive multiple of 512/);
    expect(() => Qcow2Image.createSync(path.join(d, 'a.qcow2'), { size: CS, backingFile: 'x', backingFormat: 'qcow2' as 'raw' })).toThrow(
      /backing format 'qcow2'/,
    );
  });
});
