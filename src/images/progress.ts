/**
 * Docker's JSON progress messages (pkg/jsonmessage, distribution/xfer), as the docker CLI
 * renders them: per layer, keyed by the first 12 hex digits of the blob digest.
 */
import type { PullProgress } from './types.js';

export const PROGRESS_BAR_WIDTH = 50;

/** go-units HumanSize: decimal units, 4 significant digits ('2.811MB', '512B', '1.5kB'). */
export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${Number(v.toPrecision(4))}${units[i]}`;
}

/**
 * '[=====>      ]  1.2MB/3.4MB', as the daemon's jsonmessage.JSONProgress.String() writes it
 * (no terminal: 200 columns, no time left): `=` per 2%, always a `>`, the current size padded
 * to 8; the total left out when current passed it.
 */
export function progressBar(current: number, total: number): string {
  if (total <= 0) return humanSize(current).padStart(8);
  const pct = Math.min(PROGRESS_BAR_WIDTH, Math.trunc(Math.trunc((current / total) * 100) / 2));
  const bar = `[${'='.repeat(pct)}>${' '.repeat(PROGRESS_BAR_WIDTH - pct)}] `;
  const cur = humanSize(current).padStart(8);
  return bar + (current > total ? cur : `${cur}/${humanSize(total)}`);
}

export function shortId(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}

export const progress = {
  pullingFrom: (familiarRepo: string, tagOrDigest: string): PullProgress => ({ status: `Pulling from ${familiarRepo}`, id: tagOrDigest }),
  layer: (
    status: 'Pulling fs layer' | 'Waiting' | 'Already exists' | 'Verifying Checksum' | 'Download complete' | 'Pull complete',
    digest: string,
  ): PullProgress => ({
    status,
    id: shortId(digest),
    progressDetail: {},
  }),
  downloading: (digest: string, current: number, total: number): PullProgress => ({
    status: 'Downloading',
    id: shortId(digest),
    progress: progressBar(current, total),
    progressDetail: { current, total },
  }),
  loading: (digest: string, current: number, total: number): PullProgress => ({
    status: 'Loading layer',
    id: shortId(digest),
    progress: progressBar(current, total),
    progressDetail: { current, total },
  }),
  pushing: (id: string, current: number, total: number): PullProgress => ({
    status: 'Pushing',
    id,
    progress: progressBar(current, total),
    progressDetail: { current, total },
  }),
  digest: (digest: string): PullProgress => ({ status: `Digest: ${digest}` }),
  downloadedNewer: (familiar: string): PullProgress => ({ status: `Status: Downloaded newer image for ${familiar}` }),
  upToDate: (familiar: string): PullProgress => ({ status: `Status: Image is up to date for ${familiar}` }),
  loadedImage: (familiar: string): PullProgress => ({ status: `Loaded image: ${familiar}` }),
  loadedImageId: (id: string): PullProgress => ({ status: `Loaded image ID: ${id}` }),
};

/**
 * When to send a layer's next Downloading message, as moby's progress reader decides: after
 * every `everyBytes` (512 KiB, or 1% of the layer if less), at most one per `everyMs` (100 ms),
 * and always the last. The docker CLI redraws its bars on each one, so more would only cost.
 */
export class ProgressThrottle {
  private readonly everyBytes: number;
  private lastBytes = 0;
  private lastAt = -Infinity;

  constructor(
    private readonly total: number,
    opts: { everyBytes?: number | undefined; everyMs?: number | undefined } = {},
    private readonly everyMs = opts.everyMs ?? 100,
  ) {
    this.everyBytes = opts.everyBytes ?? Math.max(1, Math.min(512 * 1024, Math.floor(total / 100)));
  }

  /** Whether `seen` bytes at time `now` (ms) deserve a message; if so, it counts as sent. */
  due(seen: number, now: number): boolean {
    if (seen !== this.total && (seen - this.lastBytes < this.everyBytes || now - this.lastAt < this.everyMs)) return false;
    this.lastBytes = seen;
    this.lastAt = now;
    return true;
  }
}
