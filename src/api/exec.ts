/** Exec (create, start, resize, inspect) and container attach: the hijacked endpoints. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts';
import { idParamsSchema } from './schemas.js';
import { PassThrough } from 'node:stream';
import { InvalidParameterError } from '../errors.js';
import { failedStartExitCode } from '../guest-agent/protocol.js';
import type { ApiContext } from './context.js';
import { MULTIPLEXED_STREAM, RAW_STREAM, qbool, serveHijacked, type HijackContext, type HijackRoute } from './hijack.js';
import { effectiveVersion, splitVersion } from './version.js';
import { framedWriter, rawWriter, encodeFrame, STREAM_STDERR, STREAM_STDOUT } from './stream-header.js';
import { parseDetachKeys, detachFilter, DEFAULT_DETACH_KEYS } from './detach-keys.js';

type Q = Record<string, string | undefined>;

const stringArray = { type: 'array', items: { type: 'string' } } as const;
export const execBodySchema = {
  type: 'object',
  required: ['Cmd'],
  properties: {
    AttachStdin: { type: 'boolean' },
    AttachStdout: { type: 'boolean' },
    AttachStderr: { type: 'boolean' },
    DetachKeys: { type: 'string' },
    Tty: { type: 'boolean' },
    Env: { ...stringArray, type: ['array', 'null'] },
    Cmd: { ...stringArray, minItems: 1 },
    Privileged: { type: 'boolean' },
    User: { type: 'string' },
    WorkingDir: { type: 'string' },
    ConsoleSize: { type: ['array', 'null'], items: { type: 'integer', minimum: 0 }, minItems: 2, maxItems: 2 },
  },
} as const;

interface ExecStartBody {
  Detach?: boolean;
  Tty?: boolean;
  ConsoleSize?: [number, number] | null;
}

function parseStartBody(buf: Buffer): ExecStartBody {
  if (buf.length === 0) return {};
  let v: unknown;
  try {
    v = JSON.parse(buf.toString('utf8'));
  } catch (e) {
    throw new InvalidParameterError(`invalid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null) throw new InvalidParameterError('invalid exec start body: not an object');
  const b = v as Record<string, unknown>;
  if (b.Detach !== undefined && typeof b.Detach !== 'boolean')
    throw new InvalidParameterError('invalid exec start body: Detach must be a boolean');
  if (b.Tty !== undefined && typeof b.Tty !== 'boolean') throw new InvalidParameterError('invalid exec start body: Tty must be a boolean');
  return b;
}

export function hijackRoutes(ctx: ApiContext): HijackRoute[] {
  const m = ctx.manager;

  const attach = async (h: HijackContext): Promise<void> => {
    const id = h.params[0]!;
    const rec = m.checkAttachable(id);
    const tty = rec.config.Tty === true;
    const q = h.query;
    const opts = {
      stdin: qbool(q.get('stdin')),
      stdout: qbool(q.get('stdout')),
      stderr: qbool(q.get('stderr')),
      logs: qbool(q.get('logs')),
      stream: qbool(q.get('stream')),
    };
    if (!opts.stdin) h.stdin.resume();
    const keys = parseDetachKeys(q.get('detachKeys') || DEFAULT_DETACH_KEYS);
    h.upgrade(tty ? RAW_STREAM : MULTIPLEXED_STREAM);
    const stdout = tty ? rawWriter(h.socket) : framedWriter(h.socket, STREAM_STDOUT);
    const stderr = tty ? rawWriter(h.socket) : framedWriter(h.socket, STREAM_STDERR);
    let detachNow = () => {};
    // With a TTY the detach keys end the session and leave the container running.
    const stdin = opts.stdin && tty ? h.stdin.pipe(detachFilter(keys, () => detachNow())) : h.stdin;
    const a = await m.attach(rec.id, { ...(opts.stdin && { stdin }), stdout, stderr }, opts);
    detachNow = () => {
      a.detach();
      h.socket.end();
    };
    h.socket.on('close', () => a.detach());
    try {
      await a.done;
    } catch (e) {
      if (!h.socket.destroyed)
        h.socket.write(tty ? `${(e as Error).message}\r\n` : encodeFrame(STREAM_STDERR, `${(e as Error).message}\n`));
    }
    await new Promise<void>((r) => stdout.end(() => stderr.end(() => r())));
    h.socket.end();
  };

  const execStart = async (h: HijackContext): Promise<void> => {
    const id = h.params[0]!;
    const body = parseStartBody(h.body);
    const ex = m.getExec(id);
    if (ex.started) throw new InvalidParameterError(`Error: Exec command ${id} has already run`, 'ERR_EXEC_STARTED');
    if (body.Detach) {
      h.stdin.resume();
      await m.startExec(id, undefined);
      h.socket.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    const tty = ex.config.Tty;
    if (!ex.config.AttachStdin) h.stdin.resume();
    h.upgrade(tty ? RAW_STREAM : MULTIPLEXED_STREAM);
    const stdout = tty ? rawWriter(h.socket) : framedWriter(h.socket, STREAM_STDOUT);
    const stderr = tty ? rawWriter(h.socket) : framedWriter(h.socket, STREAM_STDERR);
    try {
      const { attachment, exit } = await m.startExec(id, { stdin: h.stdin, stdout, stderr });
      h.socket.on('close', () => attachment.detach());
      if (tty && body.ConsoleSize && body.ConsoleSize[0] > 0) {
        // the client resizes the tty again on its own; an exec that already ended has nothing to resize
        await m.resizeExec(id, body.ConsoleSize[0], body.ConsoleSize[1]).catch(() => {});
      }
      // The CLI reads the exit code from /exec/{id}/json right after the stream ends: the exit
      // must be recorded before we close.
      await Promise.allSettled([attachment.done, exit]);
    } catch (e) {
      const msg = `OCI runtime exec failed: ${(e as Error).message}`;
      ex.exitCode = failedStartExitCode(e, 126);
      ex.running = false;
      if (!h.socket.destroyed) h.socket.write(tty ? `${msg}\r\n` : encodeFrame(STREAM_STDOUT, `${msg}\n`));
    }
    await new Promise<void>((r) => stdout.end(() => stderr.end(() => r())));
    h.socket.end();
  };

  return [
    { method: 'POST', path: /^\/containers\/([^/]+)\/attach$/, handle: attach },
    { method: 'POST', path: /^\/exec\/([^/]+)\/start$/, handle: execStart },
  ];
}

export function registerExecRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const m = ctx.manager;

  // body typed from its schema (json-schema-to-ts), not asserted
  app
    .withTypeProvider<JsonSchemaToTsProvider>()
    .post('/containers/:id/exec', { schema: { params: idParamsSchema, body: execBodySchema } }, async (req, reply) => {
      const id = m.createExec(req.params.id, req.body);
      return reply.code(201).send({ Id: id });
    });

  // Attach and exec start without `Upgrade: tcp` (dockerode's docker.run() attaches so): dockerd
  // takes the connection all the same and streams after `200 OK` until it closes. Bytes the
  // client sends after its request are not read as stdin here (Node's HTTP parser owns them),
  // so stdin stays open and empty until the connection closes.
  const [attachRoute, execRoute] = hijackRoutes(ctx);
  const plain = (route: HijackRoute, req: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply, body: Buffer): Promise<void> => {
    reply.hijack();
    const socket = req.raw.socket;
    const stdin = new PassThrough();
    socket.once('close', () => stdin.end());
    const { version } = splitVersion(req.originalUrl);
    const query = new URL(req.url, 'http://docker').searchParams;
    return serveHijacked(
      route,
      { method: 'POST', params: [req.params.id], query, headers: req.headers, body, version: effectiveVersion(version), socket, stdin },
      false,
      ctx.log,
      req.url,
    );
  };
  app.post('/containers/:id/attach', async (req: FastifyRequest<{ Params: { id: string } }>, reply) =>
    plain(attachRoute!, req, reply, Buffer.alloc(0)),
  );

  // Without `Upgrade: tcp`: the detached form (`docker exec -d`), or a plain attached start.
  app.post('/exec/:id/start', async (req: FastifyRequest<{ Params: { id: string }; Body: unknown }>, reply) => {
    const body = (req.body ?? {}) as ExecStartBody;
    const ex = m.getExec(req.params.id);
    if (ex.started) throw new InvalidParameterError(`Error: Exec command ${ex.id} has already run`, 'ERR_EXEC_STARTED');
    if (!body.Detach) return plain(execRoute!, req, reply, Buffer.from(JSON.stringify(body)));
    await m.startExec(req.params.id, undefined);
    return reply.code(200).send();
  });

  app.post('/exec/:id/resize', async (req: FastifyRequest<{ Params: { id: string }; Querystring: Q }>, reply) => {
    const h = Number(req.query.h ?? 0);
    const w = Number(req.query.w ?? 0);
    if (!Number.isInteger(h) || !Number.isInteger(w) || h < 0 || w < 0) throw new InvalidParameterError('invalid terminal size');
    await m.resizeExec(req.params.id, h, w);
    return reply.code(200).send();
  });

  app.get('/exec/:id/json', async (req: FastifyRequest<{ Params: { id: string } }>) => {
    const ex = m.getExec(req.params.id);
    const [entrypoint, ...args] = ex.config.Cmd;
    return {
      ID: ex.id,
      Running: ex.running,
      ExitCode: ex.exitCode,
      ProcessConfig: { tty: ex.config.Tty, entrypoint, arguments: args, privileged: ex.config.Privileged, user: ex.config.User },
      OpenStdin: ex.config.AttachStdin,
      OpenStderr: ex.config.AttachStderr,
      OpenStdout: ex.config.AttachStdout,
      CanRemove: false,
      ContainerID: ex.containerId,
      DetachKeys: ex.config.DetachKeys,
      Pid: ex.pid,
    };
  });
}
