import { describe, it, expect } from 'vitest';
import { MIN_WRITABLE_LAYER_SIZE, parseStorageSize, validateStorageOpt } from '../../../src/runtime/container-config.js';

const KiB = 1024;
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

describe('parseStorageSize (go-units RAMInBytes)', () => {
  it('takes bytes and binary suffixes in any case, with b / ib and an optional space', () => {
    expect(parseStorageSize('1048576')).toBe(MiB);
    expect(parseStorageSize('100b')).toBe(100);
    expect(parseStorageSize('100B')).toBe(100);
    expect(parseStorageSize('10k')).toBe(10 * KiB);
    expect(parseStorageSize('10kb')).toBe(10 * KiB);
    expect(parseStorageSize('10KiB')).toBe(10 * KiB);
    expect(parseStorageSize('64M')).toBe(64 * MiB);
    expect(parseStorageSize('64 MB')).toBe(64 * MiB);
    expect(parseStorageSize('10G')).toBe(10 * GiB);
    expect(parseStorageSize('10g')).toBe(10 * GiB);
    expect(parseStorageSize('2t')).toBe(2 * 1024 ** 4);
    expect(parseStorageSize('1p')).toBe(1024 ** 5);
  });

  it("takes fractions and exponents and truncates to whole bytes, as Go's int64(float) does", () => {
    expect(parseStorageSize('1.5g')).toBe(1.5 * GiB);
    expect(parseStorageSize('0.5k')).toBe(512);
    expect(parseStorageSize('1.3')).toBe(1);
    expect(parseStorageSize('1e3')).toBe(1000);
    expect(parseStorageSize('0')).toBe(0);
  });

  it('refuses what Docker refuses, with its words', () => {
    expect(() => parseStorageSize('')).toThrow("invalid size: ''");
    expect(() => parseStorageSize('lots')).toThrow("invalid size: 'lots'");
    expect(() => parseStorageSize('-5')).toThrow("invalid size: '-5'");
    expect(() => parseStorageSize('10x')).toThrow("invalid suffix: 'x'");
    expect(() => parseStorageSize('10mm')).toThrow("invalid suffix: 'mm'");
    expect(() => parseStorageSize('10mib5')).toThrow('strconv.ParseFloat: parsing "10mib5": invalid syntax');
    expect(() => parseStorageSize('10kibb')).toThrow("invalid suffix: 'kibb'");
    expect(() => parseStorageSize('10bb')).toThrow("invalid suffix: 'bb'");
    expect(() => parseStorageSize('10gob')).toThrow("invalid suffix: 'gob'");
    expect(() => parseStorageSize('1.2.3')).toThrow('strconv.ParseFloat: parsing "1.2.3": invalid syntax');
    expect(() => parseStorageSize('99999999p')).toThrow("invalid size: '99999999p'");
  });
});

describe('validateStorageOpt', () => {
  it('size=0 is no limit (as in overlay2); anything else must fit the smallest ext4 layer', () => {
    expect(validateStorageOpt({ StorageOpt: { size: '0' } })).toBeUndefined();
    expect(validateStorageOpt({ StorageOpt: { size: '16M' } })).toEqual({ sizeBytes: MIN_WRITABLE_LAYER_SIZE });
    expect(() => validateStorageOpt({ StorageOpt: { size: '1M' } })).toThrow(
      '--storage-opt size=1M: storage size cannot be less than 16MiB',
    );
    expect(() => validateStorageOpt({ StorageOpt: { size: String(MIN_WRITABLE_LAYER_SIZE - 1) } })).toThrow(
      'storage size cannot be less than 16MiB',
    );
  });

  it('keys are case-insensitive; unknown keys and non-string values are refused', () => {
    expect(validateStorageOpt({ StorageOpt: { Size: '1g' } })).toEqual({ sizeBytes: GiB });
    expect(() => validateStorageOpt({ StorageOpt: { size: '1g', Foo: 'x' } })).toThrow('Unknown option foo');
    expect(() => validateStorageOpt({ StorageOpt: { size: 5 as unknown as string } })).toThrow("invalid size: '5'");
    expect(() => validateStorageOpt({ StorageOpt: { size: 'big' } })).toThrow("invalid size: 'big'");
  });
});
