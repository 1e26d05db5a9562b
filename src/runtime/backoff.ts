/**
 * The restart back-off of Docker's restart manager: the first restart waits 100 ms, each next
 * one twice as long, capped at one minute; a run that lasted 10 s or more starts the series
 * again from 100 ms.
 */
export const BACKOFF_INITIAL_MS = 100;
export const BACKOFF_MULTIPLIER = 2;
export const BACKOFF_MAX_MS = 60_000;
/** a run at least this long resets the back-off */
export const BACKOFF_RESET_RUN_MS = 10_000;

/**
 * The delay before the next restart, given the previous delay (0 = none yet) and how long the
 * run that just ended lasted.
 */
export function nextBackoff(previousMs: number, runMs: number): number {
  const prev = runMs >= BACKOFF_RESET_RUN_MS ? 0 : previousMs;
  if (prev <= 0) return BACKOFF_INITIAL_MS;
  return Math.min(prev * BACKOFF_MULTIPLIER, BACKOFF_MAX_MS);
}

/** Schedules callbacks; the manager's is setTimeout, tests pass a fake clock. */
export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export const realTimers: Timers = {
  set: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clear: (h) => clearTimeout(h as NodeJS.Timeout),
};
