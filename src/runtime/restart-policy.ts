/**
 * Docker's restart policies (`--restart no|always|unless-stopped|on-failure[:N]`): validation
 * with Docker's messages and the decision taken when a container's workload exits, as plain
 * functions over the facts the manager knows (moby: restartmanager/restartmanager.go,
 * daemon/monitor.go handleContainerExit, daemon/daemon.go restore).
 */
import { InvalidParameterError } from '../errors.js';

export type RestartPolicyName = 'no' | 'always' | 'unless-stopped' | 'on-failure';

export interface RestartPolicy {
  Name: RestartPolicyName;
  MaximumRetryCount: number;
}

export const NO_RESTART: RestartPolicy = { Name: 'no', MaximumRetryCount: 0 };

/**
 * Validates a HostConfig.RestartPolicy as the Engine API does and normalizes it ('' -> 'no').
 * Throws InvalidParameterError (400) with Docker's words.
 */
export function parseRestartPolicy(p: { Name?: string; MaximumRetryCount?: number } | null | undefined): RestartPolicy {
  const name = p?.Name ?? '';
  const max = p?.MaximumRetryCount ?? 0;
  if (!Number.isInteger(max))
    throw new InvalidParameterError(`invalid restart policy: maximum retry count must be an integer, got ${String(max)}`);
  switch (name) {
    case '':
      // Clients before Engine 25 sent an empty name for "no", with any count.
      return { ...NO_RESTART };
    case 'no':
    case 'always':
    case 'unless-stopped':
      if (max !== 0) {
        throw new InvalidParameterError(
          `invalid restart policy: maximum retry count can only be used with 'on-failure'${max < 0 ? ' and cannot be negative' : ''}`,
        );
      }
      return { Name: name, MaximumRetryCount: 0 };
    case 'on-failure':
      if (max < 0) throw new InvalidParameterError('invalid restart policy: maximum retry count cannot be negative');
      return { Name: name, MaximumRetryCount: max };
    default:
      throw new InvalidParameterError(
        `invalid restart policy: unknown policy '${name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'`,
      );
  }
}

/** A record's stored policy (written by parseRestartPolicy) read back defensively. */
export function policyOf(hostConfig: Record<string, unknown>): RestartPolicy {
  const p = hostConfig.RestartPolicy as { Name?: string; MaximumRetryCount?: number } | undefined;
  try {
    return parseRestartPolicy(p);
  } catch {
    return { ...NO_RESTART };
  }
}

export interface ExitFacts {
  exitCode: number;
  /** `docker stop`/`kill` (Docker's HasBeenManuallyStopped), persisted across daemon restarts */
  manuallyStopped: boolean;
  /** the pending exit was asked for (stop, kill with the stop signal, rm -f): Docker's ExitOnNext */
  cancelled: boolean;
  /** restarts done by the policy since the last user start */
  restartCount: number;
}

/** After the workload exits while the daemon watches: restart it? (Docker's ShouldRestart.) */
export function shouldRestart(policy: RestartPolicy, f: ExitFacts): boolean {
  if (f.cancelled) return false;
  switch (policy.Name) {
    case 'no':
      return false;
    case 'always':
      return true;
    case 'unless-stopped':
      return !f.manuallyStopped;
    case 'on-failure':
      // as moby's restart manager: only unless-stopped reads the manual stop (a stop or kill with
      // the stop signal cancels through `cancelled`)
      return f.exitCode !== 0 && (policy.MaximumRetryCount === 0 || f.restartCount < policy.MaximumRetryCount);
  }
}

/**
 * At daemon start, for a container found stopped that had been started before: start it again?
 * A `docker stop` holds until the daemon restarts (Docker's documented behaviour): `always`
 * comes back, `on-failure` too if it exited non-zero (moby's restart manager ignores the manual
 * stop for it); `unless-stopped` only when not stopped by the user.
 */
export function shouldStartOnBoot(policy: RestartPolicy, f: Omit<ExitFacts, 'cancelled'>): boolean {
  if (policy.Name === 'always') return true;
  return shouldRestart(policy, { ...f, cancelled: false });
}
