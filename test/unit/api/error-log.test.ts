/** What the daemon log gets for an error answer: a stack for bugs only. */
import { describe, expect, it } from 'vitest';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errorHandler } from '../../../src/api/errors.js';
import { NotImplementedError, TvmError } from '../../../src/errors.js';

function answer(err: unknown): { lines: string[]; status: number } {
  const lines: string[] = [];
  let status = 0;
  const reply = {
    code(c: number) {
      status = c;
      return reply;
    },
    header() {
      return reply;
    },
    send() {
      return reply;
    },
  };
  errorHandler((l) => lines.push(l))(
    err,
    { method: 'POST', url: '/containers/create' } as FastifyRequest,
    reply as unknown as FastifyReply,
  );
  return { lines, status };
}

describe('errorHandler logging', () => {
  it('logs a refused feature (501) as one line without a stack trace', () => {
    const r = answer(new NotImplementedError('isolation "vm" (hyperv) is not available in this tvm daemon', 'ERR_ISOLATION_UNAVAILABLE'));
    expect(r.status).toBe(501);
    expect(r.lines).toEqual(['POST /containers/create: isolation "vm" (hyperv) is not available in this tvm daemon']);
  });
  it('logs a bug (500) with its stack', () => {
    const r = answer(new TvmError('ERR_VMM', 'boom', 500));
    expect(r.status).toBe(500);
    expect(r.lines[0]).toMatch(/boom\n\s+at /);
  });
});
