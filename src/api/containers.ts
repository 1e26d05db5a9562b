/** /containers/*: create, lifecycle, inspect, list, logs, wait, stats, top, archive, export, prune. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts';
import { PassThrough, Readable } from 'node:stream';
import { InvalidParameterError, NotImplementedError } from '../errors.js';
import type { ApiContext } from './context.js';
import { idParamsSchema } from './schemas.js';
import { parseFilters } from './filters.js';
import { inspectJson, listJson } from './container-json.js';
import { beginStream, clientGone, writeOut } from './streaming.js';
import { encodeFrame, STREAM_STDERR, STREAM_STDOUT } from './stream-header.js';
import { MULTIPLEXED_STREAM, RAW_STREAM, qbool } from './hijack.js';
import { parseTimeArg } from '../runtime/events.js';
import { validateListFilters, type WaitCondition } from '../runtime/manager.js';
import { statFromArchive, encodeStat } from './archive-stat.js';
import { hostTop } from './top.js';
import type { Stats } from '../runtime/types.js';

type Q = Record<string, string | undefined>;
type IdReq = FastifyRequest<{ Params: { id: string }; Querystring: Q }>;

const strQuery = (keys: string[]) => ({
  type: 'object',
  properties: Object.fromEntries(keys.map((k) => [k, { type: 'string' }])),
});

const stringArray = { type: ['array', 'null'], items: { type: 'string' } } as const;
const argv = { type: ['array', 'string', 'null'], items: { type: 'string' } } as const;
const int = { type: 'integer' } as const;
const intOrNull = { type: ['integer', 'null'] } as const;
/** the HostConfig resources both create and update take */
const resourceSchema = {
  Memory: int,
  MemorySwap: int,
  MemoryReservation: int,
  NanoCpus: int,
  CpuShares: int,
  CpuQuota: int,
  CpuPeriod: int,
  CpusetCpus: { type: 'string' },
  PidsLimit: intOrNull,
} as const;
const bool = { type: 'boolean' } as const;
const strMap = { type: ['object', 'null'], additionalProperties: { type: 'string' } } as const;
const restartPolicySchema = { type: ['object', 'null'], properties: { Name: { type: 'string' }, MaximumRetryCount: int } } as const;
const logConfigSchema = { type: ['object', 'null'], properties: { Type: { type: 'string' }, Config: strMap } } as const;

/** JSON schema of the create body: the fields we act on, typed; the rest passes through. */
export const createBodySchema = {
  type: 'object',
  required: ['Image'],
  properties: {
    Hostname: { type: 'string' },
    Domainname: { type: 'string' },
    User: { type: 'string' },
    AttachStdin: bool,
    AttachStdout: bool,
    AttachStderr: bool,
    Tty: bool,
    OpenStdin: bool,
    StdinOnce: bool,
    Env: stringArray,
    Cmd: argv,
    Entrypoint: argv,
    Image: { type: 'string', minLength: 1 },
    Labels: strMap,
    WorkingDir: { type: 'string' },
    StopSignal: { type: 'string' },
    StopTimeout: intOrNull,
    HostConfig: {
      type: ['object', 'null'],
      properties: {
        Binds: stringArray,
        ...resourceSchema,
        CapAdd: stringArray,
        CapDrop: stringArray,
        Privileged: bool,
        ReadonlyRootfs: bool,
        NetworkMode: { type: 'string' },
        AutoRemove: bool,
        Isolation: { type: 'string' },
        PublishAllPorts: bool,
        Mounts: {
          type: ['array', 'null'],
          items: {
            type: 'object',
            properties: { Type: { type: 'string' }, Source: { type: 'string' }, Target: { type: 'string' }, ReadOnly: bool },
          },
        },
        Tmpfs: strMap,
        RestartPolicy: restartPolicySchema,
        LogConfig: logConfigSchema,
      },
    },
  },
} as const;

const createQuerySchema = { type: 'object', properties: { name: { type: 'string' }, platform: { type: 'string' } } } as const;

/** Docker's UpdateConfig: the resources `docker update` can change, and the restart policy. */
export const updateBodySchema = {
  type: ['object', 'null'],
  properties: {
    ...resourceSchema,
    CpusetMems: { type: 'string' },
    BlkioWeight: int,
    KernelMemory: int,
    CpuRealtimePeriod: int,
    CpuRealtimeRuntime: int,
    RestartPolicy: restartPolicySchema,
  },
} as const;

/** The raw request body: fastify hands it over parsed only when a Content-Type was sent. */
/**
 * A raw request body (tar) for a consumer that may give up early (a bad archive). Consumers
 * destroy their source on error; destroying the request itself would destroy its socket, and
 * the client, still uploading, would get no response at all. So the consumer gets its own
 * stream, and once that is gone the rest of the upload is read and dropped: the error answer
 * then reaches the client on an intact connection, as with dockerd.
 */
export function bodyStream(req: FastifyRequest): Readable {
  const src: Readable = req.body instanceof Readable ? req.body : req.raw;
  const out = new PassThrough();
  src.pipe(out);
  src.on('error', (e) => out.destroy(e));
  out.on('close', () => {
    if (src.readableEnded) return;
    src.unpipe(out);
    src.resume();
  });
  return out;
}

function requireStdStreams(q: Q): { stdout: boolean; stderr: boolean } {
  const stdout = qbool(q.stdout);
  const stderr = qbool(q.stderr);
  if (!stdout && !stderr) throw new InvalidParameterError('Bad parameters: you must choose at least one stream');
  return { stdout, stderr };
}

function optInt(v: string | undefined, name: string): number | undefined {
  if (v === undefined || v === '') return undefined;
  if (!/^-?\d+$/.test(v)) throw new InvalidParameterError(`invalid value for ${name}: ${v}`);
  return Number(v);
}

export function statsJson(s: Stats, pre: Stats | undefined, id: string, name: string): Record<string, unknown> {
  const cpu = (x: Stats | undefined) => ({
    cpu_usage: { total_usage: x?.cpu.totalUsageNs ?? 0, usage_in_kernelmode: 0, usage_in_usermode: 0 },
    system_cpu_usage: x?.cpu.systemUsageNs ?? 0,
    online_cpus: x?.cpu.onlineCpus ?? 0,
    throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 },
  });
  return {
    name,
    id,
    read: s.read,
    preread: pre?.read ?? '0001-01-01T00:00:00Z',
    pids_stats: { current: s.pids.current, ...(s.pids.limit !== undefined && { limit: s.pids.limit }) },
    blkio_stats: {
      io_service_bytes_recursive: null,
      io_serviced_recursive: null,
      io_queue_recursive: null,
      io_service_time_recursive: null,
      io_wait_time_recursive: null,
      io_merged_recursive: null,
      io_time_recursive: null,
      sectors_recursive: null,
    },
    num_procs: 0,
    storage_stats: {},
    cpu_stats: cpu(s),
    precpu_stats: cpu(pre),
    memory_stats: {
      usage: s.memory.usage,
      limit: s.memory.limit,
      ...(s.memory.maxUsage !== undefined && { max_usage: s.memory.maxUsage }),
      stats: {},
    },
  };
}

const emptyStats = (): Stats => ({
  read: '0001-01-01T00:00:00Z',
  memory: { usage: 0, limit: 0 },
  cpu: { totalUsageNs: 0, systemUsageNs: 0, onlineCpus: 0 },
  pids: { current: 0 },
});

export function registerContainerRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const m = ctx.manager;
  const typed = app.withTypeProvider<JsonSchemaToTsProvider>();

  app.get(
    '/containers/json',
    { schema: { querystring: strQuery(['all', 'limit', 'size', 'filters']) } },
    async (req: FastifyRequest<{ Querystring: Q }>) => {
      const q = req.query;
      const filters = parseFilters(q.filters);
      validateListFilters(filters);
      const recs = m.list({ all: qbool(q.all), limit: optInt(q.limit, 'limit') ?? -1, filters });
      const withSize = qbool(q.size);
      const out = [];
      for (const r of recs) out.push(listJson(r, withSize ? await m.sizes(r.id) : undefined, m.network));
      return out;
    },
  );

  // body and query typed from their schemas (json-schema-to-ts), not asserted
  typed.post('/containers/create', { schema: { querystring: createQuerySchema, body: createBodySchema } }, async (req, reply) => {
    const res = await m.create(req.body, req.query.name, req.query.platform);
    return reply.code(201).send(res);
  });

  app.get('/containers/:id/json', async (req: IdReq) => {
    const rec = m.get(req.params.id);
    const out = inspectJson(rec, m.execsOf(rec.id), m.network);
    if (qbool(req.query.size)) {
      const s = await m.sizes(rec.id);
      Object.assign(out, { SizeRw: s.rw, SizeRootFs: s.rootFs });
    }
    return out;
  });

  app.get('/containers/:id/top', async (req: IdReq) => {
    const procs = await m.top(req.params.id);
    // A shared-kernel container's pids are host pids: the host's ps shows them with the user's
    // options, as dockerd does (default -ef). A VM's processes are only known by the agent.
    if (m.get(req.params.id).spec.isolation === 'container') return hostTop(req.query.ps_args || '-ef', new Set(procs.map((p) => p.pid)));
    return { Titles: ['PID', 'PPID', 'CMD'], Processes: procs.map((p) => [String(p.pid), String(p.ppid), p.cmd]) };
  });

  // docker diff
  app.get('/containers/:id/changes', async (req: IdReq, reply) => {
    const rec = m.get(req.params.id);
    const iso = m.isolationFor(rec.spec.isolation);
    if (!iso.changes) throw new NotImplementedError(`docker diff is not supported for --isolation=${rec.spec.isolation} containers yet`);
    const changes = await iso.changes(rec.spec);
    // dockerd answers null, not [], for a container without changes
    return reply.header('content-type', 'application/json; charset=utf-8').send(JSON.stringify(changes.length > 0 ? changes : null));
  });

  app.get('/containers/:id/logs', async (req: IdReq, reply: FastifyReply) => {
    const q = req.query;
    const { stdout, stderr } = requireStdStreams(q);
    const tail = q.tail === undefined || q.tail === '' || q.tail === 'all' ? undefined : optInt(q.tail, 'tail');
    const since = q.since && q.since !== '0' ? parseTimeArg(q.since) : undefined;
    const until = q.until && q.until !== '0' ? parseTimeArg(q.until) : undefined;
    const timestamps = qbool(q.timestamps);
    const follow = qbool(q.follow);
    const ac = new AbortController();
    const { tty, entries } = m.logs(req.params.id, {
      ...(tail !== undefined && { tail }),
      ...(since !== undefined && { sinceNano: since }),
      ...(until !== undefined && { untilNano: until }),
      follow,
      signal: ac.signal,
    });
    const res = beginStream(reply, tty ? RAW_STREAM : MULTIPLEXED_STREAM);
    res.on('close', () => ac.abort());
    try {
      for await (const e of entries) {
        if (e.stream === 'stdout' ? !stdout : !stderr) continue;
        const text = timestamps ? `${e.time} ${e.log}` : e.log;
        const chunk = tty ? Buffer.from(text) : encodeFrame(e.stream === 'stdout' ? STREAM_STDOUT : STREAM_STDERR, text);
        if (!(await writeOut(res, chunk))) break;
      }
    } catch (e) {
      // The 200 and part of the body are already sent: the status cannot say it, so the log does,
      // and the connection is cut rather than ended cleanly so the client sees a short read.
      ctx.log(`GET /containers/${req.params.id}/logs: reading the log failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      res.destroy();
    } finally {
      ac.abort();
      res.end();
    }
  });

  app.get('/containers/:id/export', async (req: IdReq, reply) => {
    const tar = await m.archive(req.params.id, '/', { export: true });
    // fastify reports a body stream's error by cutting the response; this listener only keeps
    // the emitter from throwing when that error has no other listener yet.
    tar.on('error', (e) => ctx.log(`GET /containers/${req.params.id}/export: ${e.message}`));
    reply.raw.on('close', () => tar.destroy());
    return reply.header('content-type', 'application/x-tar').send(tar);
  });

  app.get('/containers/:id/stats', async (req: IdReq, reply) => {
    const q = req.query;
    const rec = m.get(req.params.id);
    const stream = qbool(q.stream, true);
    const oneShot = qbool(q['one-shot']);
    if (!stream) {
      const first = await m.stats(rec.id);
      let pre: Stats | undefined;
      let cur = first;
      if (!oneShot && first) {
        await new Promise((r) => setTimeout(r, 500));
        pre = first;
        cur = (await m.stats(rec.id)) ?? first;
      }
      return statsJson(cur ?? emptyStats(), pre, rec.id, rec.name);
    }
    const res = beginStream(reply, 'application/json');
    const gone = clientGone(res);
    let pre: Stats | undefined;
    while (!gone.aborted) {
      // a container that went away ends the stream: its last frame is the empty stats
      const s = await m.stats(rec.id).catch(() => undefined);
      if (!(await writeOut(res, JSON.stringify(statsJson(s ?? emptyStats(), pre, rec.id, rec.name)) + '\n'))) break;
      if (!s) break;
      pre = s;
      await new Promise((r) => setTimeout(r, 1000));
    }
    res.end();
  });

  app.post('/containers/:id/resize', { schema: { querystring: strQuery(['h', 'w']) } }, async (req: IdReq, reply) => {
    const h = optInt(req.query.h, 'h') ?? 0;
    const w = optInt(req.query.w, 'w') ?? 0;
    if (h < 0 || w < 0) throw new InvalidParameterError('invalid terminal size');
    await m.resize(req.params.id, h, w);
    return reply.code(200).send();
  });

  app.post('/containers/:id/start', async (req: IdReq, reply) => {
    await m.start(req.params.id);
    return reply.code(204).send();
  });

  const stopOpts = (q: Q) => {
    const timeout = optInt(q.t ?? q.timeout, 't');
    return { ...(q.signal && { signal: q.signal }), ...(timeout !== undefined && { timeout }) };
  };
  app.post('/containers/:id/stop', { schema: { querystring: strQuery(['t', 'signal']) } }, async (req: IdReq, reply) => {
    await m.stop(req.params.id, stopOpts(req.query));
    return reply.code(204).send();
  });
  app.post('/containers/:id/restart', { schema: { querystring: strQuery(['t', 'signal']) } }, async (req: IdReq, reply) => {
    await m.restart(req.params.id, stopOpts(req.query));
    return reply.code(204).send();
  });
  app.post('/containers/:id/kill', { schema: { querystring: strQuery(['signal']) } }, async (req: IdReq, reply) => {
    await m.kill(req.params.id, req.query.signal && req.query.signal !== '' ? req.query.signal : 'SIGKILL');
    return reply.code(204).send();
  });
  app.post(
    '/containers/:id/rename',
    { schema: { querystring: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } } },
    async (req: IdReq, reply) => {
      await m.rename(req.params.id, req.query.name ?? '');
      return reply.code(204).send();
    },
  );
  app.post('/containers/:id/pause', async (req: IdReq, reply) => {
    await m.pause(req.params.id);
    return reply.code(204).send();
  });
  app.post('/containers/:id/unpause', async (req: IdReq, reply) => {
    await m.unpause(req.params.id);
    return reply.code(204).send();
  });
  typed.post('/containers/:id/update', { schema: { params: idParamsSchema, body: updateBodySchema } }, async (req) => {
    return m.update(req.params.id, req.body ?? {});
  });

  app.post('/containers/:id/wait', { schema: { querystring: strQuery(['condition']) } }, async (req: IdReq, reply) => {
    const cond = (req.query.condition ?? '') === '' ? 'not-running' : req.query.condition!;
    if (!['not-running', 'next-exit', 'removed'].includes(cond)) throw new InvalidParameterError(`invalid condition: "${cond}"`);
    // Resolving the container first turns an unknown ID into a plain 404 before headers go out.
    const result = m.wait(req.params.id, cond as WaitCondition);
    const res = beginStream(reply, 'application/json');
    const r = await result;
    await writeOut(res, JSON.stringify(r) + '\n');
    res.end();
  });

  app.delete('/containers/:id', { schema: { querystring: strQuery(['force', 'v', 'link']) } }, async (req: IdReq, reply) => {
    if (qbool(req.query.link)) throw new InvalidParameterError('links are not supported by tvm');
    await m.remove(req.params.id, { force: qbool(req.query.force), volumes: qbool(req.query.v) });
    return reply.code(204).send();
  });

  app.post('/containers/prune', { schema: { querystring: strQuery(['filters']) } }, async (req: FastifyRequest<{ Querystring: Q }>) => {
    return m.prune(parseFilters(req.query.filters));
  });

  // docker cp
  const archivePath = (q: Q) => {
    if (!q.path) throw new InvalidParameterError('path is required (no path given)');
    return q.path;
  };
  app.head('/containers/:id/archive', { schema: { querystring: strQuery(['path']) } }, async (req: IdReq, reply) => {
    const p = archivePath(req.query);
    const tar = await m.archive(req.params.id, p);
    try {
      const { stat } = await statFromArchive(p, tar);
      return reply.header('X-Docker-Container-Path-Stat', encodeStat(stat)).code(200).send();
    } finally {
      // Only the first header is needed: ending the producer now releases its view (a running
      // container is frozen while it is open).
      tar.destroy();
    }
  });
  app.get('/containers/:id/archive', { schema: { querystring: strQuery(['path']) } }, async (req: IdReq, reply) => {
    const p = archivePath(req.query);
    const tar = await m.archive(req.params.id, p);
    // A client that hangs up mid-copy ends the producer too (which thaws and unmounts).
    reply.raw.on('close', () => tar.destroy());
    let replay: AsyncIterable<Buffer>;
    let stat;
    try {
      ({ stat, replay } = await statFromArchive(p, tar));
    } catch (e) {
      tar.destroy();
      throw e;
    }
    const body = Readable.from(replay);
    body.on('close', () => tar.destroy());
    tar.on('error', (e) => body.destroy(e));
    return reply.header('X-Docker-Container-Path-Stat', encodeStat(stat)).header('content-type', 'application/x-tar').send(body);
  });
  app.put(
    '/containers/:id/archive',
    { schema: { querystring: strQuery(['path', 'noOverwriteDirNonDir', 'copyUIDGID']) } },
    async (req: FastifyRequest<{ Params: { id: string }; Querystring: Q; Body: unknown }>, reply) => {
      const p = archivePath(req.query);
      await m.extract(req.params.id, p, bodyStream(req));
      return reply.code(200).send();
    },
  );
}
