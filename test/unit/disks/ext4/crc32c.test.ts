import { describe, it, expect } from 'vitest';
import { crc32c, crc32cUpdate } from '../../../../src/disks/ext4/crc32c.js';

describe('crc32c', () => {
  it('matches the standard check value and RFC 3720 vectors', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(32))).toBe(0x8a9136aa);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i)))).toBe(0x46dd794e);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)))).toBe(0x113fdb5c);
  });

  it('raw update is incremental and agrees with the bytewise definition at every length', () => {
    const data = Buffer.from(Array.from({ length: 100 }, (_, i) => (i * 37 + 11) & 0xff));
    for (let n = 0; n <= data.length; n++) {
      const split = Math.floor(n / 3);
      const a = crc32cUpdate(crc32cUpdate(0x1234, data, 0, split), data, split, n);
      expect(a).toBe(crc32cUpdate(0x1234, data.subarray(0, n)));
      let slow = 0x1234;
      for (let i = 0; i < n; i++) {
        slow ^= data[i]!;
        for (let k = 0; k < 8; k++) slow = slow & 1 ? (slow >>> 1) ^ 0x82f63b78 : slow >>> 1;
      }
      expect(a).toBe(slow >>> 0);
    }
  });
});
