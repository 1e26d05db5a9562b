/**
 * Reads the json-file log the supervisor writes (`log.jsonl`, Docker's json-file driver
 * format: one `{"log": ..., "stream": ..., "time": ...}` object per line), with Docker's
 * `tail`, `since`, `until` and `follow` semantics.
 */
import { open, stat } from 'node:fs/promises';
import { watch, type FSWatcher } from 'node:fs';

export interface LogEntry {
  stream: 'stdout' | 'stderr';
  log: string;
  /** RFC 3339 with nanoseconds, as written */
  time: string;
}

export interface ReadLogOptions {
  /** only the last N entries of what exists now; undefined = all */
  tail?: number;
  sinceNano?: bigint;
  untilNano?: bigint;
  follow?: boolean;
  /** start reading at this byte offset (the log's size when a run started) */
  fromOffset?: number;
  /** with follow: true once the writer is finished (container exited); reading then drains to EOF */
  finished?: () => boolean;
  /** with follow: resolves when the writer may have finished (wakes the follower) */
  onFinish?: Promise<unknown>;
  signal?: AbortSignal;
}

/** Parses one json-file line; returns undefined for a malformed line (a torn write at a crash). */
export function parseLogLine(line: string): LogEntry | undefined {
  if (line.length === 0) return undefined;
  try {
    const v = JSON.parse(line) as Partial<LogEntry>;
    if (typeof v.log !== 'string' || (v.stream !== 'stdout' && v.stream !== 'stderr') || typeof v.time !== 'string') return undefined;
    return { log: v.log, stream: v.stream, time: v.time };
  } catch {
    return undefined;
  }
}

/** RFC 3339 with up to 9 fractional digits -> Unix nanoseconds. */
export function timeToNano(time: string): bigint {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(time);
  if (!m) return BigInt(Date.parse(time) || 0) * 1_000_000n;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  return BigInt(ms) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

function inWindow(e: LogEntry, o: ReadLogOptions): boolean {
  if (o.sinceNano === undefined && o.untilNano === undefined) return true;
  const t = timeToNano(e.time);
  return (o.sinceNano === undefined || t >= o.sinceNano) && (o.untilNano === undefined || t <= o.untilNano);
}

const CHUNK = 64 * 1024;
const POLL_MS = 250;

export async function* readLog(file: string, o: ReadLogOptions = {}): AsyncGenerator<LogEntry> {
  let offset = o.fromOffset ?? 0;
  let rest = '';
  const readNew = async (): Promise<LogEntry[]> => {
    const out: LogEntry[] = [];
    let fh;
    try {
      fh = await open(file, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return out;
      throw e;
    }
    try {
      const buf = Buffer.alloc(CHUNK);
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, CHUNK, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
        const text = rest + buf.subarray(0, bytesRead).toString('utf8');
        const lines = text.split('\n');
        rest = lines.pop()!;
        for (const l of lines) {
          const e = parseLogLine(l);
          if (e && inWindow(e, o)) out.push(e);
        }
      }
    } finally {
      await fh.close();
    }
    return out;
  };

  const first = await readNew();
  const start = o.tail !== undefined && o.tail >= 0 ? Math.max(0, first.length - o.tail) : 0;
  for (let i = start; i < first.length; i++) yield first[i]!;
  if (!o.follow) return;

  let wake: (() => void) | undefined;
  const kick = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(file, kick);
    watcher.on('error', () => {});
  } catch {
    // The file may not exist yet: polling covers it.
  }
  const timer = setInterval(kick, POLL_MS);
  o.onFinish?.then(kick, kick);
  o.signal?.addEventListener('abort', kick);
  try {
    for (;;) {
      if (o.signal?.aborted) return;
      const finished = o.finished?.() ?? false;
      for (const e of await readNew()) {
        if (o.untilNano !== undefined && timeToNano(e.time) > o.untilNano) return;
        yield e;
      }
      if (finished) return;
      if (o.untilNano !== undefined && BigInt(Date.now()) * 1_000_000n > o.untilNano) return;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  } finally {
    clearInterval(timer);
    watcher?.close();
  }
}

export async function logSize(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch {
    return 0;
  }
}

let lastNs = 0n;
/** RFC 3339 UTC with 9 fractional digits, strictly increasing within this process. */
export function logTime(): string {
  let ns = BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
  if (ns <= lastNs) ns = lastNs + 1n;
  lastNs = ns;
  const ms = Number(ns / 1_000_000n);
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0');
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, `.${frac}Z`);
}

/** One json-file line (with its newline) for `text` on `stream`. */
export function formatLogLine(stream: 'stdout' | 'stderr', text: string, time = logTime()): string {
  return JSON.stringify({ log: text, stream, time }) + '\n';
}
