/**
 * Explicit struct layouts: every field has the offset the kernel header gives it, written out,
 * never derived from a compiler's alignment rules. A layout decodes a struct at an offset of a
 * DataView into a plain object and encodes a (partial) plain object back. 64-bit fields are
 * bigint so that guest addresses and MSR values survive unchanged.
 *
 * test/unit/kvm/structs.test.ts pins every size and offset against gcc's sizeof/offsetof.
 */
import { FormatError } from '../errors.js';

export type Prim = 'u8' | 'u16' | 'u32' | 'u64' | 'i32' | 'i64';
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyLayout = Layout<any>;
export type FieldType = Prim | AnyLayout | ArrayType;
export interface ArrayType {
  readonly of: Prim | AnyLayout;
  readonly length: number;
}
export interface Field {
  readonly offset: number;
  readonly type: FieldType;
}

const PRIM_SIZE: Record<Prim, number> = { u8: 1, u16: 2, u32: 4, u64: 8, i32: 4, i64: 8 };

export function arrayOf(of: Prim | AnyLayout, length: number): ArrayType {
  return { of, length };
}

export function sizeOfType(t: FieldType): number {
  if (typeof t === 'string') return PRIM_SIZE[t];
  if (t instanceof Layout) return t.size;
  return sizeOfType(t.of) * t.length;
}

type Plain = Record<string, unknown>;

export class Layout<T extends object = Plain> {
  /**
   * @param cName the C type the layout mirrors (`struct kvm_regs`), or null for an anonymous
   *              nested struct that is only reachable through its parent.
   */
  constructor(
    readonly cName: string | null,
    readonly size: number,
    readonly fields: Readonly<Record<string, Field>>,
  ) {
    for (const [name, f] of Object.entries(fields)) {
      if (f.offset + sizeOfType(f.type) > size) {
        throw new Error(`layout ${cName ?? '<anonymous>'}: field ${name} overruns the struct`);
      }
    }
  }

  /** Offset of a dotted member path such as `cs.dpl` or `io.port`. */
  offsetOf(path: string): number {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- a cursor that walks down from this layout, not a capture
    let layout: AnyLayout = this;
    let offset = 0;
    const parts = path.split('.');
    for (let i = 0; i < parts.length; i++) {
      const f = layout.fields[parts[i]!];
      if (!f) throw new Error(`layout ${this.cName}: no field ${path}`);
      offset += f.offset;
      if (i < parts.length - 1) {
        if (!(f.type instanceof Layout)) throw new Error(`layout ${this.cName}: ${parts[i]} is not a struct`);
        layout = f.type;
      }
    }
    return offset;
  }

  alloc(): Uint8Array {
    return new Uint8Array(this.size);
  }

  decode(buf: Uint8Array | DataView, base = 0): T {
    const view = toView(buf);
    this.check(view, base);
    const out: Plain = {};
    for (const [name, f] of Object.entries(this.fields)) out[name] = readType(view, base + f.offset, f.type);
    return out as T;
  }

  /** Writes the fields present in `value`; absent fields keep what the buffer holds. */
  encode(buf: Uint8Array | DataView, value: Partial<T>, base = 0): void {
    const view = toView(buf);
    this.check(view, base);
    for (const [name, v] of Object.entries(value as Plain)) {
      const f = this.fields[name];
      if (!f) throw new Error(`layout ${this.cName}: no field ${name}`);
      if (v === undefined) continue;
      writeType(view, base + f.offset, f.type, v, `${this.cName}.${name}`);
    }
  }

  /** A fresh buffer holding `value` (zero elsewhere). */
  pack(value: Partial<T>): Uint8Array {
    const b = this.alloc();
    this.encode(b, value);
    return b;
  }

  private check(view: DataView, base: number): void {
    if (base < 0 || base + this.size > view.byteLength) {
      throw new FormatError(`${this.cName ?? 'struct'}: ${this.size} bytes at offset ${base} do not fit in ${view.byteLength}`);
    }
  }
}

export function toView(buf: Uint8Array | DataView): DataView {
  return buf instanceof DataView ? buf : new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

function readType(view: DataView, off: number, t: FieldType): unknown {
  if (typeof t === 'string') return readPrim(view, off, t);
  if (t instanceof Layout) return t.decode(view, off);
  const step = sizeOfType(t.of);
  if (t.of === 'u8') return new Uint8Array(view.buffer.slice(view.byteOffset + off, view.byteOffset + off + t.length));
  const out: unknown[] = [];
  for (let i = 0; i < t.length; i++) out.push(readType(view, off + i * step, t.of));
  return out;
}

function writeType(view: DataView, off: number, t: FieldType, v: unknown, what: string): void {
  if (typeof t === 'string') return writePrim(view, off, t, v, what);
  if (t instanceof Layout) return t.encode(view, v as Plain, off);
  const arr = v as ArrayLike<unknown>;
  if (arr.length > t.length) throw new FormatError(`${what}: ${arr.length} elements, at most ${t.length}`);
  const step = sizeOfType(t.of);
  for (let i = 0; i < arr.length; i++) writeType(view, off + i * step, t.of, arr[i], what);
}

export function readPrim(view: DataView, off: number, t: Prim): number | bigint {
  switch (t) {
    case 'u8':
      return view.getUint8(off);
    case 'u16':
      return view.getUint16(off, true);
    case 'u32':
      return view.getUint32(off, true);
    case 'i32':
      return view.getInt32(off, true);
    case 'u64':
      return view.getBigUint64(off, true);
    case 'i64':
      return view.getBigInt64(off, true);
  }
}

function writePrim(view: DataView, off: number, t: Prim, v: unknown, what: string): void {
  if (t === 'u64' || t === 'i64') {
    const b = typeof v === 'bigint' ? v : typeof v === 'number' && Number.isInteger(v) ? BigInt(v) : undefined;
    if (b === undefined) throw new FormatError(`${what}: expected an integer, got ${String(v)}`);
    if (t === 'u64') view.setBigUint64(off, BigInt.asUintN(64, b), true);
    else view.setBigInt64(off, BigInt.asIntN(64, b), true);
    return;
  }
  const n = typeof v === 'bigint' ? Number(v) : typeof v === 'boolean' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n)) throw new FormatError(`${what}: expected an integer, got ${String(v)}`);
  switch (t) {
    case 'u8':
      view.setUint8(off, n & 0xff);
      break;
    case 'u16':
      view.setUint16(off, n & 0xffff, true);
      break;
    case 'u32':
      view.setUint32(off, n >>> 0, true);
      break;
    case 'i32':
      view.setInt32(off, n | 0, true);
      break;
  }
}
