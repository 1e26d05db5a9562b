/**
 * The guest's serial console as the supervisor keeps it: written to STATE/console.log up to a
 * bound (a guest that floods its console cannot fill the host's disk; what is dropped is
 * counted), the last bytes kept in memory for error reports, and complete lines offered to
 * watchers (boot markers, the agent's fatal message).
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { Writable } from 'node:stream';

export const CONSOLE_FILE_MAX = 1 << 20;
const TAIL_MAX = 16 * 1024;
const LINE_MAX = 4096;

export class ConsoleSink {
  readonly stream: Writable;
  private readonly file: WriteStream;
  private written = 0;
  private dropped = 0;
  private tailText = '';
  private partial = '';
  private readonly seen: string[] = [];
  private readonly watchers = new Set<(line: string) => void>();

  constructor(
    filePath: string,
    private readonly maxBytes = CONSOLE_FILE_MAX,
  ) {
    this.file = createWriteStream(filePath, { flags: 'a', mode: 0o640 });
    // a failing console file must not take the VM down: the tail in memory still works
    this.file.on('error', () => {});
    this.stream = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        this.take(chunk);
        cb();
      },
    });
  }

  private take(chunk: Buffer): void {
    const room = this.maxBytes - this.written;
    if (room > 0) {
      const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
      this.file.write(part);
      this.written += part.length;
      if (part.length < chunk.length) this.file.write('\n[tvm: console output past this point is not kept in this file]\n');
    }
    if (chunk.length > Math.max(0, room)) this.dropped += chunk.length - Math.max(0, room);
    const text = chunk.toString('latin1').replace(/\r/g, '');
    this.tailText = (this.tailText + text).slice(-TAIL_MAX);
    this.partial += text;
    let nl: number;
    while ((nl = this.partial.indexOf('\n')) >= 0) {
      this.emit(this.partial.slice(0, nl));
      this.partial = this.partial.slice(nl + 1);
    }
    if (this.partial.length > LINE_MAX) {
      this.emit(this.partial);
      this.partial = '';
    }
  }

  private emit(line: string): void {
    // only marker-like lines are kept for has()/line(): a flood cannot grow this list
    if (line.startsWith('tvm-agent: ') && this.seen.length < 64) this.seen.push(line);
    for (const w of this.watchers) w(line);
  }

  onLine(f: (line: string) => void): () => void {
    this.watchers.add(f);
    return () => this.watchers.delete(f);
  }

  has(prefix: string): boolean {
    return this.line(prefix) !== undefined;
  }

  line(prefix: string): string | undefined {
    return this.seen.find((l) => l.startsWith(prefix));
  }

  /** Resolves when a line starting with `prefix` has appeared, `abort()` turns true, or after `timeoutMs`. */
  waitFor(prefix: string, timeoutMs: number, abort: () => boolean): Promise<void> {
    if (this.has(prefix)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearInterval(poll);
        clearTimeout(timer);
        off();
        resolve();
      };
      const off = this.onLine((l) => {
        if (l.startsWith(prefix)) done();
      });
      const poll = setInterval(() => abort() && done(), 20);
      const timer = setTimeout(done, timeoutMs);
    });
  }

  tail(bytes: number): string {
    return this.tailText.slice(-bytes);
  }

  get droppedBytes(): number {
    return this.dropped;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.file.end(resolve));
  }
}
