/**
 * POST /commit (`docker commit [-c CHANGE] [-m MSG] [-a AUTHOR] [--pause] CTR [REPO[:TAG]]`):
 * the container's writable layer becomes one layer over its image, and its run config
 * (with the --change instructions applied) the new image's config, as moby's daemon.CreateImageFromContainer.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ConflictError, InvalidParameterError, NotImplementedError } from '../errors.js';
import { Store } from '../images/store.js';
import { applyChanges } from '../images/changes.js';
import { formatReference, parseNormalized } from '../images/reference.js';
import type { ImageConfig } from '../images/manifest.js';
import type { ImageRunConfig } from '../images/types.js';
import type { ContainerRecord } from '../runtime/records.js';
import { ImageWrite, parentOf } from '../build/image-writer.js';
import { qbool } from './hijack.js';
import type { ApiContext } from './context.js';

type Q = Record<string, string | string[] | undefined>;
const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[v.length - 1] : v);
const many = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

const RUN_CONFIG_KEYS = [
  'User',
  'ExposedPorts',
  'Env',
  'Cmd',
  'Healthcheck',
  'Volumes',
  'WorkingDir',
  'Entrypoint',
  'OnBuild',
  'Labels',
  'StopSignal',
  'Shell',
] as const;

const isEmpty = (v: unknown): boolean =>
  v === undefined ||
  v === null ||
  v === '' ||
  (Array.isArray(v) && v.length === 0) ||
  (typeof v === 'object' && Object.keys(v).length === 0);

/**
 * The image-side run config of a container: what it was created with, less what the runtime
 * added to it (its HOSTNAME, TERM for a TTY, the default stop signal), as Docker's
 * container.Config never holds those.
 */
export function containerRunConfig(rec: ContainerRecord, image: ImageConfig): ImageRunConfig {
  const c = rec.config;
  const out: Record<string, unknown> = {};
  for (const k of RUN_CONFIG_KEYS) if (!isEmpty(c[k])) out[k] = structuredClone(c[k]);
  if (Array.isArray(out.Env)) {
    const env = (out.Env as string[]).filter((e) => e !== `HOSTNAME=${String(c.Hostname)}` && !(c.Tty === true && e === 'TERM=xterm'));
    if (env.length) out.Env = env;
    else delete out.Env;
  }
  if (out.StopSignal === 'SIGTERM' && !image.config?.StopSignal) delete out.StopSignal;
  return out;
}

export function registerCommitRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.post('/commit', async (req: FastifyRequest<{ Querystring: Q; Body: unknown }>, reply) => {
    const q = req.query;
    const store = ctx.images;
    if (!(store instanceof Store)) throw new NotImplementedError('docker commit needs the daemon image store');
    const name = one(q.container);
    if (!name) throw new InvalidParameterError('container is required (POST /commit?container=...)');
    const repo = one(q.repo);
    const tag = one(q.tag);
    let ref: string | undefined;
    if (repo) {
      const r = parseNormalized(tag ? `${repo}:${tag}` : repo);
      if (r.digest) throw new InvalidParameterError(`invalid reference format: cannot commit to a digest reference: ${repo}`);
      ref = formatReference(r);
    } else if (tag) throw new InvalidParameterError('invalid reference format: a tag needs a repository');
    const rec = ctx.manager.get(name);
    const iso = ctx.manager.isolationFor(rec.spec.isolation);
    if (!iso.layerTar) throw new NotImplementedError(`docker commit is not supported for --isolation=${rec.spec.isolation} containers yet`);
    if (rec.state.status === 'removing' || rec.state.status === 'dead') {
      throw new ConflictError(`You cannot commit container ${rec.id} which is ${rec.state.status === 'dead' ? 'dead' : 'being removed'}`);
    }
    const parent = await parentOf(store, rec.imageId);
    let runConfig = containerRunConfig(rec, parent.config);
    // a config in the body (docker-py's `conf`) overrides the container's, key by key
    if (req.body && typeof req.body === 'object' && !Array.isArray(req.body)) {
      for (const k of RUN_CONFIG_KEYS) {
        const v = (req.body as Record<string, unknown>)[k];
        if (!isEmpty(v)) (runConfig as Record<string, unknown>)[k] = v;
      }
    }
    runConfig = applyChanges(runConfig, many(q.changes));
    const pause = qbool(one(q.pause), true) && rec.state.status === 'running';
    const write = new ImageWrite(store);
    let paused = false;
    try {
      if (pause) {
        await ctx.manager.pause(rec.id);
        paused = true;
      }
      const layer = await write.layer(await iso.layerTar(rec.spec), `layer of container ${rec.id.slice(0, 12)}`);
      if (paused) {
        paused = false;
        await ctx.manager.unpause(rec.id);
      }
      const comment = one(q.comment) ?? '';
      const author = one(q.author) ?? '';
      const img = await write.image({
        parent,
        parentId: rec.imageId,
        layer,
        runConfig,
        history: { created_by: [rec.path, ...rec.args].join(' '), ...(author && { author }), ...(comment && { comment }) },
        ...(author && { author }),
        ...(comment && { comment }),
        refs: ref ? [ref] : [],
      });
      write.done();
      ctx.manager.events.publish('container', 'commit', rec.id, {
        comment,
        imageID: img.id,
        imageRef: ref ?? '',
        name: rec.name.replace(/^\//, ''),
      });
      if (ref) ctx.manager.events.publish('image', 'tag', img.id, { name: img.repoTags[0] ?? ref });
      return reply.code(201).send({ Id: img.id });
    } catch (e) {
      if (paused)
        await ctx.manager.unpause(rec.id).catch((err) => ctx.log(`commit of ${rec.id}: unpausing after a failure: ${String(err)}`));
      await write.abandon(ctx.log);
      throw e;
    }
  });
}
