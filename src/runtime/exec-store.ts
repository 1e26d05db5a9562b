/**
 * The daemon's exec instances (POST /containers/{id}/exec, /exec/{id}/...), as moby's
 * daemon/exec.go keeps its ExecStore: by exec ID for the API, and per container so a container
 * that stops marks its execs ended and one that is removed takes them along. A container keeps
 * at most MAX_EXECS_PER_CONTAINER; creating one more forgets its oldest finished exec.
 */
import { InvalidParameterError, NotFoundError } from '../errors.js';
import { newId } from './ids.js';
import type { ExecHandle, ExitStatus } from './types.js';

const MAX_EXECS_PER_CONTAINER = 256;

export interface ExecConfig {
  Cmd: string[];
  Env: string[];
  WorkingDir: string;
  User: string;
  Tty: boolean;
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  Privileged: boolean;
  DetachKeys: string;
}

/** POST /containers/{id}/exec's body as it may arrive: any field absent or null. */
export type ExecCreateBody = { [K in keyof ExecConfig]?: ExecConfig[K] | null };

export interface ExecRecord {
  id: string;
  containerId: string;
  config: ExecConfig;
  running: boolean;
  started: boolean;
  exitCode: number | null;
  pid: number;
  handle?: ExecHandle;
  exit?: Promise<ExitStatus>;
}

export class ExecStore {
  private readonly byId = new Map<string, ExecRecord>();
  private readonly byContainer = new Map<string, Map<string, ExecRecord>>();

  /** Checks the request (Docker's messages) and records a new exec of `containerId`, not started. */
  create(containerId: string, body: ExecCreateBody): ExecRecord {
    const cmd = body.Cmd ?? [];
    if (cmd.length === 0) throw new InvalidParameterError('No exec command specified');
    if (body.WorkingDir && !body.WorkingDir.startsWith('/')) {
      throw new InvalidParameterError(`the working directory '${body.WorkingDir}' is invalid, it needs to be an absolute path`);
    }
    let mine = this.byContainer.get(containerId);
    if (!mine) this.byContainer.set(containerId, (mine = new Map<string, ExecRecord>()));
    if (mine.size >= MAX_EXECS_PER_CONTAINER) {
      for (const [id, e] of mine) {
        if (!e.running && e.started) {
          mine.delete(id);
          this.byId.delete(id);
          break;
        }
      }
    }
    const id = newId();
    const ex: ExecRecord = {
      id,
      containerId,
      config: {
        Cmd: cmd,
        Env: body.Env ?? [],
        WorkingDir: body.WorkingDir ?? '',
        User: body.User ?? '',
        Tty: body.Tty === true,
        AttachStdin: body.AttachStdin === true,
        AttachStdout: body.AttachStdout === true,
        AttachStderr: body.AttachStderr === true,
        Privileged: body.Privileged === true,
        DetachKeys: body.DetachKeys ?? '',
      },
      running: false,
      started: false,
      exitCode: null,
      pid: 0,
    };
    this.byId.set(id, ex);
    mine.set(id, ex);
    return ex;
  }

  get(id: string): ExecRecord {
    const ex = this.byId.get(id);
    if (!ex) throw new NotFoundError(`No such exec instance: ${id}`);
    return ex;
  }

  /** IDs of a container's execs, oldest first. */
  of(containerId: string): string[] {
    return [...(this.byContainer.get(containerId)?.keys() ?? [])];
  }

  /** The container's processes are gone: so are its execs'. */
  containerExited(containerId: string): void {
    for (const e of this.byContainer.get(containerId)?.values() ?? []) e.running = false;
  }

  /** The container is removed: its execs are forgotten. */
  dropContainer(containerId: string): void {
    for (const id of this.byContainer.get(containerId)?.keys() ?? []) this.byId.delete(id);
    this.byContainer.delete(containerId);
  }
}
