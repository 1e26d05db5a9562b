/**
 * Maps every error to Docker's response shape: the status Docker would send and
 * `{"message": "..."}`. TvmErrors carry their status; fastify's own errors (bad JSON, schema
 * violations, bodies too large) are client errors; anything else is a bug: 500, logged.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { isTvmError } from '../errors.js';

export interface MappedError {
  status: number;
  message: string;
}

/**
 * Resource errors from the host (a full or read-only data root, a failing disk) are not bugs;
 * Docker answers them with 500 and Go's "op path: description", which we mirror.
 */
const HOST_RESOURCE_ERRNOS = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EIO', 'EMFILE', 'ENFILE']);

function hostResourceError(err: unknown): MappedError | undefined {
  const e = err as NodeJS.ErrnoException;
  if (!(e instanceof Error) || !e.code || !HOST_RESOURCE_ERRNOS.has(e.code)) return undefined;
  // Node: "ENOSPC: no space left on device, open '/x'" -> "no space left on device"
  const description = e.message.replace(/^[A-Z]+: /, '').replace(/, \w+(?: '.*')?$/, '');
  const where = [e.syscall, e.path].filter(Boolean).join(' ');
  return { status: 500, message: where ? `${where}: ${description}` : description };
}

export function isHostResourceError(err: unknown): boolean {
  return hostResourceError(err) !== undefined;
}

export function mapError(err: unknown): MappedError {
  if (isTvmError(err)) return { status: err.status, message: err.message };
  const host = hostResourceError(err);
  if (host) return host;
  const fe = err as Partial<FastifyError> & { validation?: unknown; validationContext?: string };
  if (fe && typeof fe === 'object') {
    if (fe.validation) {
      const where = fe.validationContext === 'body' ? 'invalid JSON' : `invalid ${fe.validationContext ?? 'request'}`;
      return {
        status: 400,
        message: `${where}: ${(fe.message ?? 'bad input').replace(/\b(body|querystring|params)\//g, '').replace(/\//g, '.')}`,
      };
    }
    if (fe.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || fe.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || err instanceof SyntaxError) {
      return { status: 400, message: `invalid JSON: ${fe.message ?? ''}` };
    }
    if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
      return { status: fe.statusCode, message: fe.message ?? 'bad request' };
    }
  }
  return { status: 500, message: err instanceof Error ? err.message : String(err) };
}

export function errorBody(message: string): string {
  return JSON.stringify({ message }) + '\n';
}

export function errorHandler(log: (msg: string) => void) {
  return (err: unknown, req: FastifyRequest, reply: FastifyReply): void => {
    const m = mapError(err);
    // a full host disk, or a feature this daemon refuses (501), is not a bug: one line, no stack
    if (isHostResourceError(err) || m.status === 501) log(`${req.method} ${req.url}: ${m.message}`);
    else if (m.status >= 500) log(`${req.method} ${req.url}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    if (m.status === 304) {
      // fastify sends it and reports its own failures: the reply is only thenable
      void reply.code(304).send();
      return;
    }
    // Buffer, so fastify does not append '; charset=utf-8': the docker CLI parses error bodies
    // only when Content-Type is exactly application/json.
    void reply
      .code(m.status)
      .header('content-type', 'application/json')
      .send(Buffer.from(errorBody(m.message)));
  };
}
