/**
 * Refcount arithmetic ("Host cluster management" in docs/interop/qcow2.txt): where a host
 * cluster's count lives, and reading/writing an entry of width refcount_bits = 1 << refcount_order
 * inside a refcount block. Sub-byte widths count bit 0 as the least significant bit.
 */

/** Entries per refcount block: cluster_size * 8 / refcount_bits. */
export function refcountBlockEntries(clusterBits: number, refcountOrder: number): number {
  return 2 ** (clusterBits + 3 - refcountOrder);
}

/** Largest count an entry can hold (capped at 2^53 - 1 for 64-bit entries). */
export function maxRefcount(refcountOrder: number): number {
  const bits = 2 ** refcountOrder;
  return bits >= 53 ? Number.MAX_SAFE_INTEGER : 2 ** bits - 1;
}

/** Which refcount table entry and which block entry describe the cluster at `hostOffset`. */
export function refcountLocation(
  hostOffset: number,
  clusterBits: number,
  refcountOrder: number,
): { tableIndex: number; blockIndex: number } {
  const cluster = Math.floor(hostOffset / 2 ** clusterBits);
  const per = refcountBlockEntries(clusterBits, refcountOrder);
  return { tableIndex: Math.floor(cluster / per), blockIndex: cluster % per };
}

export function getRefcount(block: Uint8Array, index: number, refcountOrder: number): number {
  switch (refcountOrder) {
    case 0:
    case 1:
    case 2: {
      const bits = 1 << refcountOrder;
      const perByte = 8 / bits;
      const byte = block[Math.floor(index / perByte)]!;
      const shift = (index % perByte) * bits;
      return (byte >> shift) & ((1 << bits) - 1);
    }
    case 3:
      return block[index]!;
    case 4:
      return (block[index * 2]! << 8) | block[index * 2 + 1]!;
    case 5:
      return ((block[index * 4]! << 24) | (block[index * 4 + 1]! << 16) | (block[index * 4 + 2]! << 8) | block[index * 4 + 3]!) >>> 0;
    case 6: {
      const p = index * 8;
      const hi = ((block[p]! << 24) | (block[p + 1]! << 16) | (block[p + 2]! << 8) | block[p + 3]!) >>> 0;
      const lo = ((block[p + 4]! << 24) | (block[p + 5]! << 16) | (block[p + 6]! << 8) | block[p + 7]!) >>> 0;
      return hi * 0x1_0000_0000 + lo;
    }
    default:
      throw new RangeError(`refcount_order ${refcountOrder} out of range 0..6`);
  }
}

export function setRefcount(block: Uint8Array, index: number, refcountOrder: number, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > maxRefcount(refcountOrder)) {
    throw new RangeError(`refcount ${value} does not fit in ${2 ** refcountOrder} bits`);
  }
  switch (refcountOrder) {
    case 0:
    case 1:
    case 2: {
      const bits = 1 << refcountOrder;
      const perByte = 8 / bits;
      const at = Math.floor(index / perByte);
      const shift = (index % perByte) * bits;
      const mask = ((1 << bits) - 1) << shift;
      block[at] = (block[at]! & ~mask) | (value << shift);
      return;
    }
    case 3:
      block[index] = value;
      return;
    case 4:
      block[index * 2] = value >>> 8;
      block[index * 2 + 1] = value & 0xff;
      return;
    case 5:
      block[index * 4] = value >>> 24;
      block[index * 4 + 1] = (value >>> 16) & 0xff;
      block[index * 4 + 2] = (value >>> 8) & 0xff;
      block[index * 4 + 3] = value & 0xff;
      return;
    case 6: {
      const p = index * 8;
      const hi = Math.floor(value / 0x1_0000_0000);
      const lo = value % 0x1_0000_0000;
      for (let i = 0; i < 4; i++) {
        block[p + i] = (hi >>> (24 - 8 * i)) & 0xff;
        block[p + 4 + i] = (lo >>> (24 - 8 * i)) & 0xff;
      }
      return;
    }
    default:
      throw new RangeError(`refcount_order ${refcountOrder} out of range 0..6`);
  }
}
