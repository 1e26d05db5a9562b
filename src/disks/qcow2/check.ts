/**
 * Consistency check of a closed qcow2 image, the subset of `qemu-img check` our images need:
 * recount every reference (header, L1 table, refcount table and blocks, L2 tables, data and
 * compressed clusters) and compare with the stored refcounts. Stored > counted is a leak
 * (harmless, what a crash may leave); stored < counted, references outside the file or into
 * metadata, and wrong copied flags are corruption.
 *
 * Repair modes: 'leaks' lowers leaked counts (only when nothing is corrupt), so the daemon can
 * reclaim space after a crash; 'all' also raises too-low counts and fixes copied flags, which
 * is what an image with the dirty bit needs (lazy refcounts, crashed writer), then clears the
 * dirty and corrupt bits. Pointer corruption (entries past the end of the file, into metadata,
 * reserved bits) is never "repaired": it is reported and the image left untouched.
 * Order of the repair writes: refcount blocks, fsync, L2/L1 copied flags, fsync, header, fsync.
 */
import { NotImplementedError } from '../../errors.js';
import { NodeFileIo, type FileIo } from '../raw.js';
import {
  EXT_BITMAPS,
  HEADER_FIELDS,
  INCOMPAT_CORRUPT,
  INCOMPAT_DIRTY,
  MAX_CLUSTER_BITS,
  QCOW2_MAGIC,
  checkSupported,
  parseHeader,
  validateHeader,
} from './header.js';
import { QCOW_OFLAG_COPIED_HI, decodeL1, decodeL2, readHalves, writeHalves } from './entries.js';
import { getRefcount, maxRefcount, refcountBlockEntries, setRefcount } from './refcount.js';

export type Qcow2RepairMode = 'none' | 'leaks' | 'all';

export interface Qcow2CheckResult {
  /** one line per problem that makes the image unsafe to use (after repair, what is left) */
  corruptions: string[];
  /** clusters whose stored refcount is higher than their references (before repair) */
  leaks: number;
  /** leaked clusters whose count this call lowered */
  leaksFixed: number;
  /** refcounts raised and copied flags corrected by this call (mode 'all') */
  errorsFixed: number;
  /** host clusters referenced at least once */
  allocatedClusters: number;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

export function checkQcow2(
  path: string,
  opts: { repair?: Qcow2RepairMode; openFile?: (path: string, readOnly: boolean) => FileIo } = {},
): Qcow2CheckResult {
  const mode: Qcow2RepairMode = opts.repair ?? 'none';
  const readOnly = mode === 'none';
  const io = opts.openFile ? opts.openFile(path, readOnly) : NodeFileIo.open(path, { readOnly });
  try {
    return check(io, path, mode);
  } finally {
    io.close();
  }
}

function check(io: FileIo, path: string, mode: Qcow2RepairMode): Qcow2CheckResult {
  const fileSize = io.size();
  let head = new Uint8Array(Math.min(fileSize, 65536));
  io.pread(head, 0);
  const view = new DataView(head.buffer);
  if (head.length >= 24 && view.getUint32(0) === QCOW2_MAGIC) {
    const cs = 2 ** Math.min(view.getUint32(HEADER_FIELDS.cluster_bits.offset), MAX_CLUSTER_BITS);
    head = new Uint8Array(Math.min(cs, fileSize));
    io.pread(head, 0);
  }
  const h = parseHeader(head, path);
  validateHeader(h, fileSize, path);
  checkSupported(h, path, true);
  if (h.nbSnapshots > 0)
    throw new NotImplementedError(`qcow2 check ${path}: images with internal snapshots are not supported`, 'ERR_QCOW2_UNSUPPORTED');
  if (h.extensions.some((e) => e.type === EXT_BITMAPS)) {
    throw new NotImplementedError(`qcow2 check ${path}: images with persistent bitmaps are not supported`, 'ERR_QCOW2_UNSUPPORTED');
  }
  const cs = 2 ** h.clusterBits;
  const l2Entries = cs / 8;
  const perBlock = refcountBlockEntries(h.clusterBits, h.refcountOrder);
  const corruptions: string[] = [];
  const fileClusters = Math.ceil(fileSize / cs);
  const counted = new Float64Array(fileClusters);
  const metadata = new Set<number>();

  const ref = (off: number, len: number, what: string): boolean => {
    if (off + len > fileSize && Math.floor(off / cs) >= fileClusters) {
      corruptions.push(`${what} at ${hex(off)} lies past the end of the file`);
      return false;
    }
    const first = Math.floor(off / cs);
    const last = Math.floor((off + Math.max(len, 1) - 1) / cs);
    for (let c = first; c <= Math.min(last, fileClusters - 1); c++) counted[c]! += 1;
    return true;
  };
  ref(0, cs, 'header');
  metadata.add(0);
  ref(h.l1TableOffset, h.l1Size * 8, 'L1 table');
  for (let c = Math.floor(h.l1TableOffset / cs); c * cs < h.l1TableOffset + h.l1Size * 8; c++) metadata.add(c);
  ref(h.refcountTableOffset, h.refcountTableClusters * cs, 'refcount table');
  for (let c = 0; c < h.refcountTableClusters; c++) metadata.add(h.refcountTableOffset / cs + c);

  const rt = new Uint8Array(h.refcountTableClusters * cs);
  io.pread(rt, h.refcountTableOffset);
  const rtEntries = rt.length / 8;
  const blocks = new Map<number, { off: number; data: Uint8Array }>();
  for (let t = 0; t < rtEntries; t++) {
    const [hi, lo] = readHalves(rt, t);
    const off = hi * 0x1_0000_0000 + lo;
    if (off === 0) continue;
    if (off % cs !== 0 || off >= fileSize) {
      corruptions.push(`refcount table entry ${t} points to ${hex(off)} (misaligned or past the end of the file)`);
      continue;
    }
    ref(off, cs, `refcount block ${t}`);
    metadata.add(off / cs);
    const data = new Uint8Array(cs);
    io.pread(data, off);
    blocks.set(t, { off, data });
  }
  const stored = (cluster: number): number => {
    const b = blocks.get(Math.floor(cluster / perBlock));
    return b ? getRefcount(b.data, cluster % perBlock, h.refcountOrder) : 0;
  };

  const l1 = new Uint8Array(h.l1Size * 8);
  io.pread(l1, h.l1TableOffset);
  const dataRefs: { cluster: number; copied: boolean; what: string; l2Off: number; index: number }[] = [];
  const l2Tables: { off: number; copied: boolean; l1i: number }[] = [];
  for (let i = 0; i < h.l1Size; i++) {
    const [hi, lo] = readHalves(l1, i);
    const e = decodeL1(hi, lo);
    if (e.reservedBits) corruptions.push(`L1 entry ${i} has reserved bits set`);
    if (e.offset === 0) continue;
    if (e.offset % cs !== 0 || e.offset >= fileSize) {
      corruptions.push(`L1 entry ${i} points to ${hex(e.offset)} (misaligned or past the end of the file)`);
      continue;
    }
    if (metadata.has(e.offset / cs)) corruptions.push(`L1 entry ${i} points to ${hex(e.offset)}, a metadata cluster`);
    ref(e.offset, cs, `L2 table of L1 entry ${i}`);
    l2Tables.push({ off: e.offset, copied: e.copied, l1i: i });
  }
  const l2Set = new Set(l2Tables.map((t) => t.off / cs));
  const table = new Uint8Array(cs);
  for (const t of l2Tables) {
    io.pread(table, t.off);
    for (let j = 0; j < l2Entries; j++) {
      const [hi, lo] = readHalves(table, j);
      if (hi === 0 && lo === 0) continue;
      const e = decodeL2(hi, lo, h.clusterBits);
      const what = `L2 entry ${j} of the L2 table at ${hex(t.off)}`;
      if (e.reservedBits) corruptions.push(`${what} has reserved bits set`);
      if (e.kind === 'compressed') {
        ref(e.offset, e.compressedSize, what);
      } else if (e.kind === 'normal' || e.kind === 'zero-alloc') {
        if (e.offset % cs !== 0 || e.offset >= fileSize) {
          corruptions.push(`${what} points to ${hex(e.offset)} (misaligned or past the end of the file)`);
          continue;
        }
        const c = e.offset / cs;
        if (metadata.has(c) || l2Set.has(c)) corruptions.push(`${what} points to ${hex(e.offset)}, a metadata cluster`);
        ref(e.offset, cs, what);
        dataRefs.push({ cluster: c, copied: e.copied, what, l2Off: t.off, index: j });
      }
    }
  }

  let leaks = 0;
  let allocated = 0;
  const leaked: number[] = [];
  const undercounted: number[] = [];
  const refcountProblems: string[] = [];
  const limit = Math.max(fileClusters, blocks.size > 0 ? Math.max(...[...blocks.keys()].map((t) => (t + 1) * perBlock)) : 0);
  for (let c = 0; c < limit; c++) {
    const want = c < fileClusters ? counted[c]! : 0;
    const have = stored(c);
    if (want > 0) allocated++;
    if (want > maxRefcount(h.refcountOrder)) corruptions.push(`cluster ${hex(c * cs)} needs a refcount above the maximum`);
    else if (have < want) {
      refcountProblems.push(`cluster ${hex(c * cs)} is referenced ${want} times but its refcount is ${have}`);
      undercounted.push(c);
    } else if (have > want) {
      leaks++;
      leaked.push(c);
    }
  }
  const pointerCorruption = corruptions.length > 0;

  let leaksFixed = 0;
  let errorsFixed = 0;
  const dirtyBlocks = new Set<number>();
  const setCount = (c: number): boolean => {
    const t = Math.floor(c / perBlock);
    const b = blocks.get(t);
    if (!b) return false;
    setRefcount(b.data, c % perBlock, h.refcountOrder, c < fileClusters ? counted[c]! : 0);
    dirtyBlocks.add(t);
    return true;
  };
  if (!pointerCorruption && mode !== 'none') {
    if (mode === 'all') {
      for (const c of undercounted) {
        if (setCount(c)) errorsFixed++;
        else corruptions.push(`cluster ${hex(c * cs)} is in use but has no refcount block (cannot repair)`);
      }
      refcountProblems.length = 0;
    }
    for (const c of leaked) if (setCount(c)) leaksFixed++;
    for (const t of dirtyBlocks) io.pwrite(blocks.get(t)!.data, blocks.get(t)!.off);
    if (dirtyBlocks.size > 0) io.fsync();
  }
  corruptions.push(...refcountProblems);

  // The copied flag must say "refcount is exactly one" where it is set, and may only be
  // missing where the cluster is shared (checked against the counts as they are now).
  const fixCopied = mode === 'all' && !pointerCorruption && corruptions.length === 0;
  let l1Changed = false;
  for (const t of l2Tables) {
    const one = stored(t.off / cs) === 1;
    if (t.copied !== one) {
      if (fixCopied) {
        const [hi, lo] = readHalves(l1, t.l1i);
        writeHalves(l1, t.l1i, one ? (hi | QCOW_OFLAG_COPIED_HI) >>> 0 : (hi & ~QCOW_OFLAG_COPIED_HI) >>> 0, lo);
        l1Changed = true;
        errorsFixed++;
      } else
        corruptions.push(
          `L1 entry ${t.l1i}: copied flag ${t.copied ? 'set' : 'clear'} but the L2 table's refcount is ${stored(t.off / cs)}`,
        );
    }
  }
  const l2Fixes = new Map<number, number[]>();
  for (const d of dataRefs) {
    const one = stored(d.cluster) === 1;
    if (d.copied !== one) {
      if (fixCopied) {
        const list = l2Fixes.get(d.l2Off) ?? [];
        list.push(d.index);
        l2Fixes.set(d.l2Off, list);
        errorsFixed++;
      } else corruptions.push(`${d.what}: copied flag ${d.copied ? 'set' : 'clear'} but the cluster's refcount is ${stored(d.cluster)}`);
    }
  }
  if (fixCopied) {
    for (const [off, idx] of l2Fixes) {
      io.pread(table, off);
      for (const j of idx) {
        const [hi, lo] = readHalves(table, j);
        const e = decodeL2(hi, lo, h.clusterBits);
        const one = stored(e.offset / cs) === 1;
        writeHalves(table, j, one ? (hi | QCOW_OFLAG_COPIED_HI) >>> 0 : (hi & ~QCOW_OFLAG_COPIED_HI) >>> 0, lo);
      }
      io.pwrite(table, off);
    }
    if (l1Changed) io.pwrite(l1, h.l1TableOffset);
    if (l2Fixes.size > 0 || l1Changed) io.fsync();
    const bits = h.incompatibleFeatures & ~(INCOMPAT_DIRTY | INCOMPAT_CORRUPT);
    if (bits !== h.incompatibleFeatures && h.version === 3) {
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(bits);
      io.pwrite(b, HEADER_FIELDS.incompatible_features.offset);
      io.fsync();
    }
  }
  return { corruptions, leaks, leaksFixed, errorsFixed, allocatedClusters: allocated };
}
