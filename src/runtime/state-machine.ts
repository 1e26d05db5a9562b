/**
 * The container lifecycle as Docker exposes it (State.Status), with the allowed transitions
 * spelled out and Docker's own messages for the forbidden ones.
 *
 *   created --start--> running --pause--> paused --unpause--> running
 *   running|paused --exit--> exited --start--> running
 *   created|exited|dead --remove--> removing --(gone)
 *   running|paused --lost--> dead   (supervisor vanished across a daemon restart)
 *   running|paused --restart-wait--> restarting  (exited; the restart policy restarts it after a back-off)
 *   restarting --restart-start--> running
 *   restarting --restart-cancel--> exited  (stop, kill, rm -f, policy changed, or the restart failed)
 */
import { ConflictError, TvmError } from '../errors.js';

export type ContainerStatus = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

export type LifecycleEvent =
  'start' | 'pause' | 'unpause' | 'exit' | 'remove' | 'lost' | 'remove-failed' | 'restart-wait' | 'restart-start' | 'restart-cancel';

const TRANSITIONS: Record<LifecycleEvent, Partial<Record<ContainerStatus, ContainerStatus>>> = {
  start: { created: 'running', exited: 'running', dead: 'running' },
  pause: { running: 'paused' },
  unpause: { paused: 'running' },
  exit: { running: 'exited', paused: 'exited', restarting: 'exited' },
  remove: { created: 'removing', exited: 'removing', dead: 'removing' },
  lost: { running: 'dead', paused: 'dead', restarting: 'dead', removing: 'dead' },
  'remove-failed': { removing: 'dead' },
  'restart-wait': { running: 'restarting', paused: 'restarting' },
  'restart-start': { restarting: 'running' },
  'restart-cancel': { restarting: 'exited' },
};

/** 304 Not Modified: Docker answers it (empty body) for start/stop of a container already there. */
export class NotModifiedError extends TvmError {
  constructor(message: string) {
    super('ERR_NOT_MODIFIED', message, 304);
  }
}

export function canTransition(from: ContainerStatus, ev: LifecycleEvent): boolean {
  return TRANSITIONS[ev][from] !== undefined;
}

/** The next status, or throws the error Docker gives for that operation in that state. */
export function transition(from: ContainerStatus, ev: LifecycleEvent, name: string): ContainerStatus {
  const to = TRANSITIONS[ev][from];
  if (to !== undefined) return to;
  throw forbidden(from, ev, name);
}

/** Docker's errContainerIsRestarting. */
export function restartingError(id: string): TvmError {
  return new ConflictError(`Container ${id} is restarting, wait until the container is running`);
}

function forbidden(from: ContainerStatus, ev: LifecycleEvent, name: string): TvmError {
  switch (ev) {
    case 'start':
      // a restarting container counts as running for Docker (State.Running is true)
      if (from === 'running' || from === 'restarting') return new NotModifiedError(`container ${name} is already running`);
      if (from === 'paused') return new ConflictError('cannot start a paused container, try unpause instead');
      if (from === 'removing') return new ConflictError(`container is marked for removal and cannot be started`);
      break;
    case 'pause':
      if (from === 'restarting') return restartingError(name);
      if (from === 'paused') return new ConflictError(`Container ${name} is already paused`);
      return new ConflictError(`Container ${name} is not running`);
    case 'unpause':
      return new ConflictError(`Container ${name} is not paused`);
    case 'remove':
      if (from === 'running' || from === 'paused' || from === 'restarting') {
        const what = from === 'paused' ? 'paused' : from;
        return new ConflictError(
          `cannot remove container "${name}": container is ${what}: stop the container before removing or force remove`,
        );
      }
      if (from === 'removing') return new ConflictError(`removal of container ${name.replace(/^\//, '')} is already in progress`);
      break;
    default:
      break;
  }
  return new ConflictError(`cannot ${ev} container ${name} in state ${from}`, 'ERR_BAD_TRANSITION');
}

/** Checks for operations that need a running container (kill, exec, top, ...), with Docker's words. */
export function assertRunning(status: ContainerStatus, id: string, op: 'kill' | 'exec' | 'top' | 'attach' | 'resize' | 'stats'): void {
  if (op === 'exec') {
    if (status === 'restarting') throw restartingError(id);
    if (status === 'paused') throw new ConflictError(`container ${id} is paused, unpause the container before exec`);
    if (status !== 'running') throw new ConflictError(`container ${id} is not running`);
    return;
  }
  if (op === 'attach') {
    if (status === 'exited' || status === 'dead') throw new ConflictError('You cannot attach to a stopped container, start it first');
    if (status === 'paused') throw new ConflictError('You cannot attach to a paused container, unpause it first');
    if (status === 'removing') throw new ConflictError(`container is marked for removal and cannot be attached to`);
    if (status === 'restarting') throw new ConflictError(`container ${id} is restarting, wait until the container is running`);
    return;
  }
  if (status === 'running' || status === 'paused') return;
  if (status === 'restarting' && op === 'top') throw restartingError(id);
  if (op === 'kill') throw new ConflictError(`Cannot kill container: ${id}: Container ${id} is not running`);
  throw new ConflictError(`Container ${id} is not running`);
}

export function isActive(status: ContainerStatus): boolean {
  return status === 'running' || status === 'paused' || status === 'restarting';
}
