/**
 * POST /build (the classic builder protocol: `DOCKER_BUILDKIT=0 docker build`, docker-py,
 * dockerode, docker-compose) and POST /build/prune (`docker builder prune`).
 *
 * The body is the context tar; the answer is a stream of Docker's JSON messages (`stream`,
 * `aux` with the image ID, pull progress, and `errorDetail` for a step that failed). A request
 * that fails before the first message (bad options, a Dockerfile that does not parse) gets a
 * plain error status instead, as from dockerd.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { InvalidParameterError, NotImplementedError, TvmError } from '../errors.js';
import { Store } from '../images/store.js';
import { familiarString, formatReference, parseNormalized } from '../images/reference.js';
import { mapIsolation } from '../runtime/container-config.js';
import { BuildCache } from '../build/cache.js';
import { BuildContext } from '../build/context.js';
import { build, type BuildOptions } from '../build/builder.js';
import { RunStepError } from '../build/errors.js';
import { parseInstructions } from '../build/instructions.js';
import { beginStream, writeOut } from './streaming.js';
import { qbool } from './hijack.js';
import { bodyStream } from './containers.js';
import type { ApiContext } from './context.js';

type Q = Record<string, string | string[] | undefined>;
const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[v.length - 1] : v);
const many = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

function jsonMap(name: string, v: string | undefined): Record<string, string | null> {
  if (v === undefined || v === '') return {};
  let j: unknown;
  try {
    j = JSON.parse(v);
  } catch {
    throw new InvalidParameterError(`${name}: not valid JSON`);
  }
  if (j === null) return {};
  if (typeof j !== 'object' || Array.isArray(j)) throw new InvalidParameterError(`${name}: expected a JSON object`);
  for (const [k, x] of Object.entries(j)) {
    if (x !== null && typeof x !== 'string') throw new InvalidParameterError(`${name}: value of ${k} is not a string`);
  }
  return j as Record<string, string | null>;
}

/** The options of a build request, checked before the body is read. */
export function buildOptions(q: Q, defaultIsolation: 'vm' | 'container'): BuildOptions {
  if (one(q.remote))
    throw new NotImplementedError(
      'building from a remote context (URL or git repository) is not supported by tvm: send the context as the request body',
    );
  if (one(q.version) === '2')
    throw new NotImplementedError('BuildKit (version=2) is not supported by tvm: build with the classic builder (DOCKER_BUILDKIT=0)');
  const platform = one(q.platform);
  if (platform && !/^linux(\/amd64)?$/.test(platform))
    throw new InvalidParameterError(`platform ${platform} is not supported: tvm builds linux/amd64 images only`);
  // build options that would change how RUN steps run: refused unless left at their defaults
  for (const [k, flag] of [
    ['memory', '--memory'],
    ['memswap', '--memory-swap'],
    ['cpushares', '--cpu-shares'],
    ['cpuperiod', '--cpu-period'],
    ['cpuquota', '--cpu-quota'],
    ['shmsize', '--shm-size'],
  ] as const) {
    const v = one(q[k]);
    if (v !== undefined && v !== '' && Number(v) !== 0 && !(k === 'memswap' && Number(v) === -1))
      throw new InvalidParameterError(`${flag} is not supported by tvm for builds`);
  }
  for (const [k, flag] of [
    ['cgroupparent', '--cgroup-parent'],
    ['cpusetcpus', '--cpuset-cpus'],
    ['cpusetmems', '--cpuset-mems'],
    ['extrahosts', '--add-host'],
  ] as const) {
    if (one(q[k])) throw new InvalidParameterError(`${flag} is not supported by tvm for builds`);
  }
  for (const [k, flag] of [
    ['ulimits', '--ulimit'],
    ['cachefrom', '--cache-from'],
    ['securityopt', '--security-opt'],
  ] as const) {
    const v = one(q[k]);
    if (v && v !== 'null' && v !== '[]' && v !== '{}') throw new InvalidParameterError(`${flag} is not supported by tvm for builds`);
  }
  const squash = one(q.squash);
  if (squash && qbool(squash)) throw new NotImplementedError('--squash is not supported by tvm');
  // as dockerd: RUN steps join the default bridge unless told otherwise ('' lets the container
  // create choose, as it does for `docker run`); a network that does not exist fails the
  // first RUN with the create's error
  const network = one(q.networkmode) ?? '';
  if (network.startsWith('container:')) throw new InvalidParameterError(`network mode "${network}" is not supported for builds`);
  const isolation = one(q.isolation) ?? '';
  mapIsolation(isolation, defaultIsolation); // refuses an unknown one now, not at the first RUN
  const tags = many(q.t).map((t) => {
    const r = parseNormalized(t);
    if (r.digest) throw new InvalidParameterError(`invalid reference format: a build cannot be tagged with a digest: ${t}`);
    return formatReference(r);
  });
  const labels = Object.fromEntries(Object.entries(jsonMap('labels', one(q.labels))).map(([k, v]) => [k, v ?? '']));
  const target = one(q.target);
  return {
    dockerfile: one(q.dockerfile) ?? 'Dockerfile',
    tags,
    buildArgs: jsonMap('buildargs', one(q.buildargs)),
    ...(target && { target }),
    noCache: qbool(one(q.nocache)),
    pull: qbool(one(q.pull)),
    labels,
    network,
    isolation,
    quiet: qbool(one(q.q)),
  };
}

const caches = new WeakMap<ApiContext, BuildCache>();
function cacheOf(ctx: ApiContext): BuildCache {
  let c = caches.get(ctx);
  if (!c) {
    c = new BuildCache(ctx.manager.dataRoot);
    caches.set(ctx, c);
  }
  return c;
}

const line = (o: unknown) => JSON.stringify(o) + '\r\n';

/**
 * Scratch directories of builds a previous daemon process ran (it stopped mid-build) are
 * removed before this process's first build makes its own.
 */
const swept = new WeakMap<ApiContext, Promise<void>>();
function sweepOnce(ctx: ApiContext): Promise<void> {
  let p = swept.get(ctx);
  if (!p) {
    p = rm(path.join(ctx.manager.dataRoot, 'build', 'tmp'), { recursive: true, force: true }).catch((e) =>
      ctx.log(`build: removing old scratch dirs: ${String(e)}`),
    );
    swept.set(ctx, p);
  }
  return p;
}

export function registerBuildRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.post('/build', async (req: FastifyRequest<{ Querystring: Q; Body: unknown }>, reply: FastifyReply) => {
    const store = ctx.images;
    if (!(store instanceof Store)) throw new NotImplementedError('docker build needs the daemon image store');
    const opts = buildOptions(req.query, ctx.manager.defaultIsolation);
    await sweepOnce(ctx);
    const tmpDir = path.join(ctx.manager.dataRoot, 'build', 'tmp', randomBytes(8).toString('hex'));
    const context = await BuildContext.open(bodyStream(req), tmpDir, { dockerfile: opts.dockerfile }).catch(async (e: unknown) => {
      await rm(tmpDir, { recursive: true, force: true }).catch((err) => ctx.log(`build: removing ${tmpDir}: ${String(err)}`));
      throw e;
    });
    let res: ServerResponse | undefined;
    // messages are queued and written in order; the first one commits to a 200 stream
    let chain: Promise<unknown> = Promise.resolve();
    const send = (o: unknown) => {
      res ??= beginStream(reply, 'application/json');
      const r = res;
      chain = chain.then(() => writeOut(r, line(o)));
    };
    try {
      // a Dockerfile that does not parse is answered with its own status, before any output
      parseInstructions(await context.dockerfile(opts.dockerfile));
      const id = await build({ manager: ctx.manager, store, cache: cacheOf(ctx), tmpDir, log: ctx.log }, context, opts, {
        stream: (text) => send({ stream: text }),
        progress: (p) => send(p),
      });
      send({ id: 'moby.image.id', aux: { ID: id } });
      // with -q the only output is the image ID (the CLI prints the stream as it is)
      if (opts.quiet) send({ stream: `${id}\n` });
      else send({ stream: `Successfully built ${id.slice(7, 19)}\n` });
      for (const t of opts.tags) {
        ctx.manager.events.publish('image', 'tag', id, { name: familiarString(parseNormalized(t)) });
        if (!opts.quiet) send({ stream: `Successfully tagged ${familiarString(parseNormalized(t))}\n` });
      }
    } catch (e) {
      if (!res) {
        await rm(tmpDir, { recursive: true, force: true }).catch((err) => ctx.log(`build: removing ${tmpDir}: ${String(err)}`));
        throw e;
      }
      const message = e instanceof Error ? e.message : String(e);
      const code = e instanceof RunStepError ? e.exitCode : undefined;
      send({ errorDetail: { ...(code !== undefined && { code }), message }, error: message });
      if ((!(e instanceof TvmError) || e.status >= 500) && !(e instanceof RunStepError))
        ctx.log(`build failed: ${e instanceof Error ? (e.stack ?? message) : message}`);
    }
    await rm(tmpDir, { recursive: true, force: true }).catch((err) => ctx.log(`build: removing ${tmpDir}: ${String(err)}`));
    await chain;
    (res ?? beginStream(reply, 'application/json')).end();
  });

  app.post('/build/prune', async () => {
    const store = ctx.images;
    const ids = await cacheOf(ctx).prune();
    let reclaimed = 0;
    const deleted: string[] = [];
    if (store instanceof Store) {
      const inUse = ctx.manager.imagesInUse();
      for (const id of ids) {
        let rec;
        try {
          rec = await store.resolve(id);
        } catch {
          continue; // removed since
        }
        // only the builder's own untagged step images: a tagged result stays
        if (rec.repoTags.length > 0 || inUse.has(id)) continue;
        // one a container or another image still needs is kept (as dockerd's prune keeps it): not an error here
        const out = await store.remove(id, { force: false, inUse }).catch(() => []);
        if (out.length) {
          deleted.push(id);
          reclaimed += rec.size;
        }
      }
    }
    return { CachesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed };
  });
}
