/**
 * The kernel command line: built from parts, checked (printable ASCII, no NUL, fits in the
 * kernel's limit including the terminating NUL), written NUL-terminated into guest memory.
 */
import { InvalidParameterError } from '../../errors.js';
import type { GuestRam } from '../memory.js';

export class Cmdline {
  private parts: string[] = [];
  constructor(readonly capacity: number) {
    if (capacity < 2) throw new InvalidParameterError(`command line capacity ${capacity} is too small`);
  }

  get text(): string {
    return this.parts.join(' ');
  }

  /** Appends whitespace-separated arguments as given (`console=ttyS0 reboot=k`). */
  append(args: string): this {
    const t = args.trim();
    if (!t) return this;
    for (let i = 0; i < t.length; i++) {
      const c = t.charCodeAt(i);
      if (c < 0x20 || c > 0x7e) {
        throw new InvalidParameterError(
          `kernel command line: character 0x${c.toString(16)} at ${i} of ${JSON.stringify(t)} is not printable ASCII`,
        );
      }
    }
    const next = [...this.parts, t].join(' ');
    if (next.length + 1 > this.capacity) {
      throw new InvalidParameterError(
        `kernel command line is ${next.length + 1} bytes with its NUL, the kernel takes at most ${this.capacity}`,
      );
    }
    this.parts.push(t);
    return this;
  }

  /** True if some argument is `key` or starts with `key=`. */
  has(key: string): boolean {
    return this.text.split(/\s+/).some((a) => a === key || a.startsWith(`${key}=`));
  }

  bytes(): Uint8Array {
    const b = new Uint8Array(this.text.length + 1);
    for (let i = 0; i < this.text.length; i++) b[i] = this.text.charCodeAt(i);
    return b;
  }

  writeTo(mem: GuestRam, gpa: number): number {
    const b = this.bytes();
    mem.slice(gpa, b.length).set(b);
    return b.length;
  }
}
