/**
 * What a failed start leaves behind: the record's error text (in the words the docker CLI
 * reads its exit code from) and the error the client gets, keeping the isolation's code and
 * HTTP status when it had one (as moby's daemon/start.go translates containerd's errors).
 */
import { TvmError } from '../errors.js';

/**
 * The docker CLI picks `docker run`'s exit code (127 not found, 126 not executable) by
 * looking for Go's lowercase errno texts in the start error; C's strerror capitalizes them.
 */
export function goErrnoText(msg: string): string {
  return msg
    .replace(/No such file or directory/g, 'no such file or directory')
    .replace(/Permission denied/g, 'permission denied')
    .replace(/Is a directory/g, 'is a directory');
}

/** The error a failed `start` answers with: the isolation's code and status, or a 400 ERR_START_FAILED. */
export function startFailedError(id: string, errorText: string, cause: unknown): TvmError {
  const status = cause instanceof TvmError ? cause.status : 400;
  return new TvmError(
    cause instanceof TvmError ? cause.code : 'ERR_START_FAILED',
    `failed to start container ${id.slice(0, 12)}: ${errorText}`,
    status,
    { cause },
  );
}
