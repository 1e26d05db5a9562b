/**
 * Every error that can reach a user carries a stable code and, where it can reach the API, the
 * HTTP status Docker would answer with. The API turns these into Docker's `{"message": ...}`.
 * Codes come from the one registry, src/error-codes.ts (listed for users in docs/errors.md).
 */
import type { ErrorCode } from './error-codes.js';

export type { ErrorCode } from './error-codes.js';

export class TvmError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  constructor(code: ErrorCode, message: string, status = 500, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
  }
}

/** 400: the request or input is malformed. */
export class InvalidParameterError extends TvmError {
  constructor(message: string, code: ErrorCode = 'ERR_INVALID_PARAMETER', options?: { cause?: unknown }) {
    super(code, message, 400, options);
  }
}

/** 404: no such container, image, volume, exec instance. */
export class NotFoundError extends TvmError {
  constructor(message: string, code: ErrorCode = 'ERR_NOT_FOUND', options?: { cause?: unknown }) {
    super(code, message, 404, options);
  }
}

/** 409: the object exists but its state forbids the operation. */
export class ConflictError extends TvmError {
  constructor(message: string, code: ErrorCode = 'ERR_CONFLICT', options?: { cause?: unknown }) {
    super(code, message, 409, options);
  }
}

/** 501: asked for a feature tvm does not have yet; never silently substituted. */
export class NotImplementedError extends TvmError {
  constructor(message: string, code: ErrorCode = 'ERR_NOT_IMPLEMENTED') {
    super(code, message, 501);
  }
}

/** Malformed binary or archive input (tar, qcow2 header, manifest, agent message). */
export class FormatError extends TvmError {
  constructor(message: string, code: ErrorCode = 'ERR_BAD_FORMAT', options?: { cause?: unknown }) {
    super(code, message, 400, options);
  }
}

export function isTvmError(e: unknown): e is TvmError {
  return e instanceof TvmError;
}
