/**
 * The timers of restart-policy restarts (moby's restartmanager and container/monitor.go): one
 * pending restart per container, replaced by a newer one and invalidated by a token, so a
 * timer that is already firing when the restart is cancelled (docker stop, rm, a user start)
 * does nothing. What a restart does is the manager's; this only decides whether it still may.
 */
import type { Timers } from './backoff.js';

/** A container's restart state (kept with its other live state). */
export interface RestartSlot {
  /** pending policy restart, and a token that invalidates a timer already firing */
  restartTimer?: unknown;
  restartToken: number;
}

export class RestartScheduler {
  constructor(private readonly timers: Timers) {}

  /** Calls `fire(token)` after `ms`, unless cancelled or rescheduled before; replaces a pending one. */
  schedule(slot: RestartSlot, ms: number, fire: (token: number) => void): void {
    if (slot.restartTimer !== undefined) this.timers.clear(slot.restartTimer);
    const token = ++slot.restartToken;
    slot.restartTimer = this.timers.set(() => {
      if (token !== slot.restartToken) return;
      slot.restartTimer = undefined;
      fire(token);
    }, ms);
  }

  /** Whether a restart fired with `token` is still the one wanted. */
  isCurrent(slot: RestartSlot, token: number): boolean {
    return token === slot.restartToken;
  }

  /** Drops the pending restart, and any whose timer already fired but has not run yet. */
  cancel(slot: RestartSlot): void {
    slot.restartToken++;
    if (slot.restartTimer !== undefined) {
      this.timers.clear(slot.restartTimer);
      slot.restartTimer = undefined;
    }
  }
}
