import { describe, expect, it } from 'vitest';
import { FormatError } from '../../../src/errors.js';
import { AgentError, decodeReply, decodeRequest, encodeMessage, parseExitStatus } from '../../../src/guest-agent/protocol.js';

const enc = (o: unknown) => Buffer.from(JSON.stringify(o));

describe('agent protocol messages', () => {
  it('round-trips a request through encode/decode', () => {
    const f = encodeMessage({ v: 1, type: 'signal', id: 5, signal: 15 });
    expect(f.readUInt32BE(0)).toBe(f.length - 4);
    expect(decodeRequest(f.subarray(4))).toEqual({ v: 1, type: 'signal', id: 5, signal: 15 });
  });

  it('decodes ok, error and hello replies', () => {
    expect(decodeReply(enc({ v: 1, type: 'ok', id: 3, pid: 9 }))).toEqual({ v: 1, type: 'ok', id: 3, pid: 9 });
    expect(decodeReply(enc({ v: 1, type: 'error', id: 3, code: 'ERR_STATE', message: 'no' }))).toMatchObject({ code: 'ERR_STATE' });
    expect(decodeReply(enc({ v: 1, type: 'hello', version: 1, agent: 'tvm-agent/0.1', pid: 1 }))).toMatchObject({ type: 'hello' });
  });

  it.each([
    ['not JSON', Buffer.from('{x')],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0x7d])],
    ['an array', enc([1])],
    ['no version', enc({ type: 'ok', id: 1 })],
    ['another version', enc({ v: 2, type: 'ok', id: 1 })],
    ['an unknown type', enc({ v: 1, type: 'event', id: 1 })],
    ['ok without id', enc({ v: 1, type: 'ok' })],
    ['a fractional id', enc({ v: 1, type: 'ok', id: 1.5 })],
    ['error without message', enc({ v: 1, type: 'error', id: 1, code: 'X' })],
    ['hello without pid', enc({ v: 1, type: 'hello', version: 1, agent: 'a' })],
  ])('rejects a reply that is %s with FormatError', (_what, payload) => {
    expect(() => decodeReply(payload)).toThrow(FormatError);
  });

  it('validates requests as the agent does', () => {
    expect(() => decodeRequest(enc({ v: 1, type: 'launch', id: 1 }))).toThrow(/unknown type/);
    expect(() => decodeRequest(enc({ v: 1, type: 'start', id: 0 }))).toThrow(FormatError);
    expect(() => decodeRequest(enc({ v: 1, type: 'hello', kind: 'x', versions: [1] }))).toThrow(FormatError);
    expect(decodeRequest(enc({ v: 1, type: 'hello', kind: 'stream', stream: 'stdout', versions: [1] }))).toMatchObject({ kind: 'stream' });
  });

  it('parses exit statuses strictly', () => {
    expect(parseExitStatus({ exitCode: 127, finishedAt: 't', oomKilled: false, error: 'e' })).toEqual({
      exitCode: 127,
      finishedAt: 't',
      oomKilled: false,
      error: 'e',
    });
    expect(() => parseExitStatus({ exitCode: '1', finishedAt: 't', oomKilled: false })).toThrow(FormatError);
  });

  it('maps agent error codes to HTTP statuses', () => {
    expect(new AgentError('ERR_NOT_FOUND', 'x').status).toBe(404);
    expect(new AgentError('ERR_STATE', 'x').status).toBe(409);
    expect(new AgentError('ERR_BAD_SPEC', 'x').status).toBe(400);
    expect(new AgentError('ERR_SYSTEM', 'x')).toMatchObject({ status: 500, code: 'ERR_AGENT_SYSTEM', agentCode: 'ERR_SYSTEM' });
  });
});
