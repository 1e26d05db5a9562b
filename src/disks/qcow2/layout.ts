/**
 * Where a new image's metadata goes. Same order as `qemu-img create`: header cluster, refcount
 * table, refcount blocks, L1 table; with the defaults (64 KiB clusters, 16-bit refcounts) that
 * is clusters 0, 1, 2 and 3, exactly what QEMU writes.
 */
import { l1EntriesFor } from './header.js';
import { refcountBlockEntries } from './refcount.js';

export interface CreateLayout {
  clusterSize: number;
  l1Size: number;
  l1TableOffset: number;
  l1Clusters: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  refcountBlockOffsets: number[];
  /** clusters in use (all refcount 1): [0, totalClusters) */
  totalClusters: number;
}

export function createLayout(size: number, clusterBits: number, refcountOrder: number): CreateLayout {
  const cs = 2 ** clusterBits;
  const l1Size = l1EntriesFor(size, clusterBits);
  const l1Clusters = Math.max(1, Math.ceil((l1Size * 8) / cs));
  const perBlock = refcountBlockEntries(clusterBits, refcountOrder);
  let rtClusters = 1;
  let blocks = 1;
  // Fixed point: the refcount structures must also count themselves.
  for (;;) {
    const total = 1 + rtClusters + blocks + l1Clusters;
    const needBlocks = Math.ceil(total / perBlock);
    const needRt = Math.max(1, Math.ceil((needBlocks * 8) / cs));
    if (needBlocks === blocks && needRt === rtClusters) break;
    blocks = Math.max(blocks, needBlocks);
    rtClusters = Math.max(rtClusters, needRt);
  }
  const refcountTableOffset = cs;
  const firstBlock = 1 + rtClusters;
  const refcountBlockOffsets = Array.from({ length: blocks }, (_, i) => (firstBlock + i) * cs);
  const l1First = firstBlock + blocks;
  return {
    clusterSize: cs,
    l1Size,
    l1TableOffset: l1First * cs,
    l1Clusters,
    refcountTableOffset,
    refcountTableClusters: rtClusters,
    refcountBlockOffsets,
    totalClusters: l1First + l1Clusters,
  };
}
