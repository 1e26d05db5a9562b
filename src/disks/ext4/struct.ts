/**
 * Explicit on-disk layouts: every struct is a table of `name: [offset, type]` with the names the
 * kernel headers use, so a test can pin each offset against the spec and the writer never does
 * offset arithmetic by hand.
 */
export type FieldType = 'u8' | 'u16' | 'u32' | 'u64' | { bytes: number };
export type FieldTable = Record<string, readonly [number, FieldType]>;
export type FieldValue = number | Uint8Array;
export type StructValues<T extends FieldTable> = Partial<Record<keyof T, FieldValue>>;

export function fieldSize(t: FieldType): number {
  if (typeof t === 'object') return t.bytes;
  return t === 'u8' ? 1 : t === 'u16' ? 2 : t === 'u32' ? 4 : 8;
}

export interface Struct<T extends FieldTable> {
  readonly size: number;
  readonly fields: T;
  readonly littleEndian: boolean;
  /** writes the given fields at `at`; fields not named keep what `buf` holds */
  encode(values: StructValues<T>, buf?: Buffer, at?: number): Buffer;
  decode(buf: Uint8Array, at?: number): Record<keyof T, FieldValue>;
  offsetOf(name: keyof T): number;
}

export function defineStruct<T extends FieldTable>(size: number, fields: T, littleEndian = true): Struct<T> {
  for (const [name, [off, type]] of Object.entries(fields)) {
    if (off + fieldSize(type) > size) throw new Error(`struct field ${name} overruns the struct (${size} bytes)`);
  }
  return {
    size,
    fields,
    littleEndian,
    offsetOf: (name) => fields[name]![0],
    encode(values, buf = Buffer.alloc(size), at = 0) {
      for (const key of Object.keys(values) as (keyof T & string)[]) {
        const v = values[key];
        if (v === undefined) continue;
        const def = fields[key];
        if (!def) throw new Error(`unknown struct field ${key}`);
        writeField(buf, at + def[0], def[1], v, littleEndian, key);
      }
      return buf;
    },
    decode(src, at = 0) {
      const buf = Buffer.from(src.buffer, src.byteOffset, src.byteLength);
      const out = {} as Record<keyof T, FieldValue>;
      for (const key of Object.keys(fields) as (keyof T)[]) {
        const [off, type] = fields[key]!;
        out[key] = readField(buf, at + off, type, littleEndian);
      }
      return out;
    },
  };
}

function writeField(buf: Buffer, off: number, type: FieldType, v: FieldValue, le: boolean, name: string): void {
  if (typeof type === 'object') {
    if (!(v instanceof Uint8Array) || v.length > type.bytes) throw new Error(`field ${name}: expected at most ${type.bytes} bytes`);
    buf.fill(0, off, off + type.bytes);
    buf.set(v, off);
    return;
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
    throw new Error(`field ${name}: expected a non-negative integer, got ${String(v)}`);
  switch (type) {
    case 'u8':
      if (v > 0xff) throw new Error(`field ${name}: ${v} does not fit in u8`);
      buf[off] = v;
      return;
    case 'u16':
      if (v > 0xffff) throw new Error(`field ${name}: ${v} does not fit in u16`);
      le ? buf.writeUInt16LE(v, off) : buf.writeUInt16BE(v, off);
      return;
    case 'u32':
      if (v > 0xffffffff) throw new Error(`field ${name}: ${v} does not fit in u32`);
      le ? buf.writeUInt32LE(v, off) : buf.writeUInt32BE(v, off);
      return;
    case 'u64':
      le ? buf.writeBigUInt64LE(BigInt(v), off) : buf.writeBigUInt64BE(BigInt(v), off);
      return;
  }
}

function readField(buf: Buffer, off: number, type: FieldType, le: boolean): FieldValue {
  if (typeof type === 'object') return buf.subarray(off, off + type.bytes);
  switch (type) {
    case 'u8':
      return buf[off]!;
    case 'u16':
      return le ? buf.readUInt16LE(off) : buf.readUInt16BE(off);
    case 'u32':
      return le ? buf.readUInt32LE(off) : buf.readUInt32BE(off);
    case 'u64':
      return Number(le ? buf.readBigUInt64LE(off) : buf.readBigUInt64BE(off));
  }
}

/** low and high 32-bit halves of a value up to 2^53 */
export function lo32(v: number): number {
  return v % 0x1_0000_0000;
}
export function hi32(v: number): number {
  return Math.floor(v / 0x1_0000_0000);
}
