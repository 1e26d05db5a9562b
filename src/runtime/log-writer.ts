/**
 * Docker's json-file log, written by a supervisor that is not the host agent (the VM
 * supervisor, which receives the workload's output over vsock). Same format and rotation as
 * the agent's writer (native/agent/logfile.h), so the daemon's reader (log-file.ts) follows
 * either: lines split at '\n', a partial line flushed at 16 KiB or at the end; before a record
 * would take the file past max-size, path.N-2 -> path.N-1 ... path.1 -> path.2, the current
 * file hard-linked as path.1 and a fresh empty file renamed over path (max-file 1: start over).
 */
import { closeSync, fsyncSync, linkSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { formatLogLine } from './log-file.js';

export const LOG_MAX_LINE = 16 * 1024;

export interface LogRotate {
  maxSize: number;
  maxFiles: number;
}

type Stream = 'stdout' | 'stderr';

export class JsonLogWriter {
  private fd: number;
  private size = 0;
  private readonly partial: Record<Stream, Buffer[]> = { stdout: [], stderr: [] };
  private readonly partialLen: Record<Stream, number> = { stdout: 0, stderr: 0 };

  constructor(
    private readonly path: string,
    private readonly rotate?: LogRotate,
  ) {
    this.fd = openSync(path, 'a', 0o640);
  }

  /** Appends output of `stream`; whole lines are written at once. */
  write(stream: Stream, data: Buffer): void {
    let rest = data;
    while (rest.length) {
      const nl = rest.indexOf(0x0a);
      const room = LOG_MAX_LINE - this.partialLen[stream];
      let take = nl >= 0 ? nl + 1 : rest.length;
      const full = take > room;
      if (full) take = room;
      this.partial[stream].push(rest.subarray(0, take));
      this.partialLen[stream] += take;
      rest = rest.subarray(take);
      const endsLine = nl >= 0 && !full;
      if (endsLine || this.partialLen[stream] >= LOG_MAX_LINE) this.flush(stream);
    }
  }

  /** Writes a partial line of `stream` (its output ended). */
  flush(stream: Stream): void {
    if (!this.partialLen[stream]) return;
    const text = Buffer.concat(this.partial[stream]).toString('utf8');
    this.partial[stream] = [];
    this.partialLen[stream] = 0;
    this.append(formatLogLine(stream, text));
  }

  private append(record: string): void {
    const bytes = Buffer.from(record);
    if (this.rotate && this.rotate.maxSize > 0 && this.size > 0 && this.size + bytes.length > this.rotate.maxSize) this.rotateNow();
    writeSync(this.fd, bytes);
    this.size += bytes.length;
  }

  private rotateNow(): void {
    const { maxFiles } = this.rotate!;
    if (maxFiles > 1) {
      for (let i = maxFiles - 2; i >= 1; i--) {
        try {
          renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        }
      }
      try {
        unlinkSync(`${this.path}.1`);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      linkSync(this.path, `${this.path}.1`);
    }
    // a fresh file renamed over the path: a reader always finds one, and a follower holding the
    // old descriptor drains it and goes on with the next
    const tmp = `${this.path}.new`;
    const fd = openSync(tmp, 'w', 0o640);
    renameSync(tmp, this.path);
    closeSync(this.fd);
    this.fd = fd;
    this.size = 0;
  }

  close(): void {
    this.flush('stdout');
    this.flush('stderr');
    fsyncSync(this.fd);
    closeSync(this.fd);
  }
}
