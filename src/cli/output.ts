/** Terminal output helpers: Docker-style tables and multiplexed stream demuxing. */
import type { Readable, Writable } from 'node:stream';
import { FrameDecoder, STREAM_STDERR } from '../api/stream-header.js';

export function table(rows: string[][], out: Writable = process.stdout): void {
  if (rows.length === 0) return;
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  for (const r of rows) {
    out.write(
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3)))
        .join('')
        .trimEnd() + '\n',
    );
  }
}

/** Copies a hijacked or logs stream to stdout/stderr: raw with a TTY, demultiplexed without. */
export async function copyStream(
  src: Readable,
  tty: boolean,
  stdout: Writable = process.stdout,
  stderr: Writable = process.stderr,
): Promise<void> {
  const dec = new FrameDecoder();
  for await (const chunk of src) {
    if (tty) {
      stdout.write(chunk as Buffer);
      continue;
    }
    for (const f of dec.push(chunk as Buffer)) (f.stream === STREAM_STDERR ? stderr : stdout).write(f.payload);
  }
}

export function die(msg: string, code = 1): never {
  process.stderr.write(`${msg}\n`);
  process.exit(code);
}
