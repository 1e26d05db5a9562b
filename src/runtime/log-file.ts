/**
 * Reads the json-file log the supervisor writes (`log.jsonl`, Docker's json-file driver
 * format: one `{"log": ..., "stream": ..., "time": ...}` object per line, rotated to
 * `log.jsonl.1`.. with `max-size`/`max-file`), with Docker's `tail`, `since`, `until` and
 * `follow` semantics.
 */
import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';

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

/**
 * The files of a rotated json-file log (`log.jsonl.N-1` .. `log.jsonl.1`, then `log.jsonl`),
 * oldest first, as names in the log's directory. The agent rotates by renaming (see
 * native/agent/logfile.c), so a file keeps its inode while its number grows.
 */
export async function logChainNames(file: string): Promise<string[]> {
  const dir = path.dirname(file);
  const base = path.basename(file);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const rotated: { n: number; name: string }[] = [];
  let current = false;
  for (const n of names) {
    if (n === base) current = true;
    else if (n.startsWith(`${base}.`) && /^\d+$/.test(n.slice(base.length + 1)))
      rotated.push({ n: Number(n.slice(base.length + 1)), name: n });
  }
  rotated.sort((a, b) => b.n - a.n);
  return [...rotated.map((r) => path.join(dir, r.name)), ...(current ? [file] : [])];
}

/** One file of the chain, open: reading continues from `offset`. */
interface ChainFile {
  fh: FileHandle;
  ino: number;
  offset: number;
  rest: string;
}

/**
 * Opens every file of the log, oldest first, as one consistent snapshot: if a rotation moved
 * files while they were being opened (a name no longer names the inode opened), it starts over.
 * The same inode under two names (mid-rotation: linked as `.1` before the new file replaces the
 * current one) is opened once.
 */
export async function openLogChain(file: string): Promise<ChainFile[]> {
  for (let attempt = 0; ; attempt++) {
    const names = await logChainNames(file);
    const opened: { name: string; fh: FileHandle; ino: number }[] = [];
    let stable = true;
    for (const name of names) {
      try {
        const fh = await open(name, 'r');
        opened.push({ name, fh, ino: (await fh.stat()).ino });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
          await Promise.all(opened.map((o) => o.fh.close()));
          throw e;
        }
        stable = false;
      }
    }
    for (const o of opened) {
      if (!stable) break;
      try {
        if ((await stat(o.name)).ino !== o.ino) stable = false;
      } catch {
        stable = false;
      }
    }
    if (stable || attempt >= 10) {
      const out: ChainFile[] = [];
      for (let i = 0; i < opened.length; i++) {
        const o = opened[i]!;
        if (opened.slice(i + 1).some((later) => later.ino === o.ino)) {
          await o.fh.close();
          continue;
        }
        out.push({ fh: o.fh, ino: o.ino, offset: 0, rest: '' });
      }
      return out;
    }
    await Promise.all(opened.map((o) => o.fh.close()));
  }
}

/**
 * Reads what is new in one file, entry by entry (complete lines only; a partial line waits in
 * `rest`). A generator, so a log of any length costs one chunk of memory, never one array
 * element per line (spreading such an array into push() overflowed the stack at ~125k lines).
 */
async function* readMore(f: ChainFile, o: ReadLogOptions): AsyncGenerator<LogEntry> {
  const buf = Buffer.alloc(CHUNK);
  for (;;) {
    const { bytesRead } = await f.fh.read(buf, 0, CHUNK, f.offset);
    if (bytesRead === 0) break;
    f.offset += bytesRead;
    const text = f.rest + buf.subarray(0, bytesRead).toString('utf8');
    const lines = text.split('\n');
    f.rest = lines.pop()!;
    for (const l of lines) {
      const e = parseLogLine(l);
      if (e && inWindow(e, o)) yield e;
    }
  }
}

/**
 * `--tail`: scans one file backwards from `size` in chunks, adding entries that pass the window
 * to `acc` (newest first) until it holds `n`. Returns where the last complete line ends (bytes
 * after it are a line still being written: a follower resumes there). Memory is O(n), not the
 * log's size.
 */
async function tailFile(fh: FileHandle, size: number, n: number, o: ReadLogOptions, acc: LogEntry[]): Promise<number> {
  const buf = Buffer.alloc(CHUNK);
  let pos = size;
  let carry: Buffer = Buffer.alloc(0);
  let completeEnd: number | undefined;
  const take = (line: Buffer) => {
    const e = parseLogLine(line.toString('utf8'));
    if (e && inWindow(e, o)) acc.push(e);
  };
  while (pos > 0 && (acc.length < n || completeEnd === undefined)) {
    const len = Math.min(CHUNK, pos);
    pos -= len;
    let got = 0;
    while (got < len) {
      const { bytesRead } = await fh.read(buf, got, len - got, pos + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    const data = carry.length > 0 ? Buffer.concat([buf.subarray(0, got), carry]) : buf.subarray(0, got);
    let stop = data.length;
    for (let i = data.lastIndexOf(0x0a, stop - 1); i >= 0; i = stop > 0 ? data.lastIndexOf(0x0a, stop - 1) : -1) {
      if (completeEnd === undefined) completeEnd = pos + i + 1;
      else if (acc.length < n) take(data.subarray(i + 1, stop));
      stop = i;
      if (acc.length >= n) break;
    }
    // A copy: `buf` is reused for the next chunk.
    carry = Buffer.from(data.subarray(0, stop));
  }
  // The file's first line has no newline before it.
  if (pos === 0 && completeEnd !== undefined && acc.length < n && carry.length > 0) take(carry);
  return completeEnd ?? 0;
}

/**
 * `docker logs`: every entry of the log, across its rotated files in order, with `tail`,
 * `since`/`until`; with `follow`, then what the writer appends, switching to the new file at
 * each rotation (after draining the old one, which the writer no longer touches once renamed)
 * so no line is lost or repeated. Entries are yielded as read: memory does not grow with the log.
 */
export async function* readLog(file: string, o: ReadLogOptions = {}): AsyncGenerator<LogEntry> {
  let chain = await openLogChain(file);
  try {
    if (o.tail !== undefined && o.tail >= 0) {
      // Newest file first, each from its end: only the last `tail` lines are ever read.
      const acc: LogEntry[] = [];
      for (let k = chain.length - 1; k >= 0; k--) {
        const f = chain[k]!;
        const newest = k === chain.length - 1;
        if (!newest && acc.length >= o.tail) break;
        const end = await tailFile(f.fh, (await f.fh.stat()).size, o.tail, o, acc);
        if (newest) f.offset = end;
      }
      for (let i = acc.length - 1; i >= 0; i--) yield acc[i]!;
    } else {
      for (const f of chain) yield* readMore(f, o);
    }
    if (!o.follow) return;
    // Only the newest file can still grow.
    for (const f of chain.slice(0, -1)) await f.fh.close();
    chain = chain.slice(-1);
    let cur: ChainFile | undefined = chain[0];

    let wake: (() => void) | undefined;
    const kick = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    let watcher: FSWatcher | undefined;
    try {
      watcher = watch(path.dirname(file), kick);
      // The poll timer below wakes the follower anyway; a watcher error only costs latency.
      watcher.on('error', () => {});
    } catch {
      // polling covers it
    }
    const timer = setInterval(kick, POLL_MS);
    o.onFinish?.then(kick, kick);
    o.signal?.addEventListener('abort', kick);
    // Stops at the first entry past `until` (entries are in time order).
    let pastUntil = false;
    async function* drain(f: ChainFile): AsyncGenerator<LogEntry> {
      for await (const e of readMore(f, o)) {
        if (o.untilNano !== undefined && timeToNano(e.time) > o.untilNano) {
          pastUntil = true;
          return;
        }
        yield e;
      }
    }
    try {
      for (;;) {
        if (o.signal?.aborted) return;
        const finished = o.finished?.() ?? false;
        if (cur) yield* drain(cur);
        if (pastUntil) return;
        // Rotated away? Then `cur` is complete: go on with the files that came after it.
        const now = await stat(file).then(
          (st) => st.ino,
          () => undefined,
        );
        if (now !== undefined && now !== cur?.ino) {
          if (cur) yield* drain(cur);
          if (pastUntil) return;
          const next = await openLogChain(file);
          const at = cur ? next.findIndex((f) => f.ino === cur!.ino) : -1;
          for (const f of next.slice(0, at + 1)) await f.fh.close();
          const newer = next.slice(at + 1);
          await cur?.fh.close();
          // Until the middle files are drained, they are ours to close (the finally below).
          chain = newer;
          cur = newer.at(-1);
          for (const f of newer.slice(0, -1)) {
            yield* drain(f);
            await f.fh.close();
            chain = chain.filter((c) => c !== f);
            if (pastUntil) return;
          }
          if (cur) yield* drain(cur);
          if (pastUntil) return;
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
      o.signal?.removeEventListener('abort', kick);
    }
  } finally {
    await Promise.all(
      chain.map((f) =>
        f.fh.close().catch((e: unknown) => {
          // Closing a read-only handle can only fail if it is already closed: nothing to undo.
          void e;
        }),
      ),
    );
  }
}

/** Bytes of the log, rotated files included. */
export async function logSize(file: string): Promise<number> {
  let total = 0;
  for (const name of await logChainNames(file)) {
    try {
      total += (await stat(name)).size;
    } catch {
      // rotated away meanwhile
    }
  }
  return total;
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
