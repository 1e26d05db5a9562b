/** Long-lived HTTP responses (wait, logs, events, stats, pull progress): headers now, body later. */
import type { FastifyReply } from 'fastify';
import type { ServerResponse } from 'node:http';
import { commonHeaders } from './version.js';

export const SERVER_VERSION = '0.1.0';

export function beginStream(reply: FastifyReply, contentType: string, extra: Record<string, string> = {}): ServerResponse {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { ...commonHeaders(SERVER_VERSION), 'Content-Type': contentType, ...extra });
  res.flushHeaders();
  return res;
}

/** Writes honoring backpressure; resolves false when the client is gone. */
export function writeOut(res: ServerResponse, chunk: string | Buffer): Promise<boolean> {
  if (res.destroyed || res.writableEnded) return Promise.resolve(false);
  if (res.write(chunk)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}

/** An AbortSignal that fires when the client closes the connection. */
export function clientGone(res: ServerResponse): AbortSignal {
  const ac = new AbortController();
  res.on('close', () => ac.abort());
  return ac.signal;
}
