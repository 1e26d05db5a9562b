/** /images/*: list, inspect, pull (create), import, load, save (get), tag, remove, prune, history. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { InvalidParameterError, NotImplementedError, NotFoundError } from '../errors.js';
import type { ImageRecord, PullProgress } from '../images/types.js';
import type { ApiContext } from './context.js';
import { parseFilters, checkFilterKeys } from './filters.js';
import { beginStream, writeOut } from './streaming.js';
import { qbool } from './hijack.js';
import { bodyStream } from './containers.js';
import { pushRoute } from './push.js';
import { familiarString, parseNormalized } from '../images/reference.js';
import { mapError } from './errors.js';
import { goMap } from './go-map.js';

type Q = Record<string, string | string[] | undefined>;

const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[v.length - 1] : v);
const many = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

export function imageSummary(img: ImageRecord, containers: number): Record<string, unknown> {
  return {
    Id: img.id,
    ParentId: img.parent ?? '',
    RepoTags: img.repoTags,
    RepoDigests: img.repoDigests,
    Created: Math.floor(Date.parse(img.created) / 1000) || 0,
    Size: img.size,
    SharedSize: -1,
    Labels: goMap(img.config.Labels ?? {}),
    Containers: containers,
  };
}

export function imageInspect(img: ImageRecord): Record<string, unknown> {
  return {
    Id: img.id,
    RepoTags: img.repoTags,
    RepoDigests: img.repoDigests,
    Parent: img.parent ?? '',
    Comment: img.comment ?? '',
    Created: img.created,
    DockerVersion: '',
    Author: img.author ?? '',
    Config: {
      Hostname: '',
      Domainname: '',
      User: img.config.User ?? '',
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      Tty: false,
      OpenStdin: false,
      StdinOnce: false,
      Env: img.config.Env ?? null,
      Cmd: img.config.Cmd ?? null,
      Image: '',
      Volumes: img.config.Volumes ?? null,
      WorkingDir: img.config.WorkingDir ?? '',
      Entrypoint: img.config.Entrypoint ?? null,
      OnBuild: img.config.OnBuild ?? null,
      Labels: goMap(img.config.Labels) ?? null,
      ...(img.config.StopSignal && { StopSignal: img.config.StopSignal }),
      ...(img.config.Healthcheck && { Healthcheck: img.config.Healthcheck }),
      ...(img.config.Shell && { Shell: img.config.Shell }),
      ...(img.config.ExposedPorts && { ExposedPorts: img.config.ExposedPorts }),
    },
    Architecture: img.architecture,
    Os: img.os,
    Size: img.size,
    GraphDriver: { Name: 'tvm', Data: null },
    RootFS: { Type: 'layers', Layers: img.diffIds },
    Metadata: { LastTagTime: '0001-01-01T00:00:00Z' },
  };
}

export function decodeAuth(
  header: string | string[] | undefined,
): { username?: string; password?: string; identitytoken?: string; registrytoken?: string } | undefined {
  const h = Array.isArray(header) ? header[0] : header;
  if (!h) return undefined;
  try {
    const v = JSON.parse(Buffer.from(h.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8')) as Record<string, string>;
    const out: { username?: string; password?: string; identitytoken?: string; registrytoken?: string } = {};
    if (v.username) out.username = v.username;
    if (v.password) out.password = v.password;
    if (v.identitytoken) out.identitytoken = v.identitytoken;
    if (v.registrytoken) out.registrytoken = v.registrytoken;
    return out;
  } catch {
    throw new InvalidParameterError('invalid X-Registry-Auth header: not base64url JSON');
  }
}

function progressLine(p: PullProgress): string {
  return JSON.stringify(p) + '\r\n';
}

function errorLine(message: string): string {
  return JSON.stringify({ errorDetail: { message }, error: message }) + '\r\n';
}

/** Docker's FamiliarMatch: a shell-style glob on the familiar reference, or on its name alone. */
function refMatcher(pattern: string): (familiarRef: string) => boolean {
  const re = new RegExp(
    '^' +
      pattern
        .replace(/[.+^${}()|\\]/g, '\\$&')
        .replace(/\*/g, '[^/]*')
        .replace(/\?/g, '[^/]') +
      '$',
  );
  return (t) => re.test(t) || re.test(t.replace(/@sha256:[0-9a-f]+$/, '').replace(/:[^:/]+$/, ''));
}

/**
 * The `reference` filter as dockerd applies it: an image is listed when one of its references
 * matches, and then with only the references that matched (`docker images bb:1` shows bb:1,
 * not every tag of that image ID).
 */
function filterByReference(img: ImageRecord, patterns: string[]): ImageRecord | undefined {
  const ms = patterns.map(refMatcher);
  const hit = (r: string) => ms.some((m) => m(r));
  const repoTags = img.repoTags.filter(hit);
  const repoDigests = img.repoDigests.filter(hit);
  if (repoTags.length === 0 && repoDigests.length === 0) return undefined;
  return { ...img, repoTags, repoDigests };
}

function familiarRef(ref: string): string {
  try {
    return familiarString(parseNormalized(ref));
  } catch {
    return ref;
  }
}

export function registerImageRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const images = ctx.images;
  const m = ctx.manager;
  const usage = () => {
    const n = new Map<string, number>();
    for (const r of m.records.all()) n.set(r.imageId, (n.get(r.imageId) ?? 0) + 1);
    return n;
  };

  app.get('/images/json', async (req: FastifyRequest<{ Querystring: Q }>) => {
    const f = parseFilters(one(req.query.filters));
    checkFilterKeys(f, ['dangling', 'label', 'reference', 'before', 'since', 'until']);
    const used = usage();
    let list = await images.list();
    // as Docker: an untagged image that others were built on (a build step) is intermediate,
    // listed only with all=1 and never dangling
    const parents = new Set(list.map((i) => i.parent).filter((p): p is string => p !== undefined));
    const intermediate = (i: ImageRecord) => i.repoTags.length === 0 && parents.has(i.id);
    if (!qbool(one(req.query.all))) list = list.filter((i) => !intermediate(i));
    if (f.dangling?.length) {
      const want = f.dangling.includes('true');
      list = list.filter((i) => (i.repoTags.length === 0 && !intermediate(i)) === want);
    }
    if (f.reference?.length) list = list.flatMap((i) => filterByReference(i, f.reference!) ?? []);
    if (f.label?.length) {
      list = list.filter((i) =>
        f.label!.every((l) => {
          const eq = l.indexOf('=');
          const labels = i.config.Labels ?? {};
          return eq < 0 ? l in labels : labels[l.slice(0, eq)] === l.slice(eq + 1);
        }),
      );
    }
    return list.sort((a, b) => (a.created < b.created ? 1 : -1)).map((i) => imageSummary(i, used.get(i.id) ?? 0));
  });

  app.post('/images/create', async (req: FastifyRequest<{ Querystring: Q; Body: unknown }>, reply: FastifyReply) => {
    const q = req.query;
    const fromImage = one(q.fromImage);
    const fromSrc = one(q.fromSrc);
    if (fromSrc !== undefined) {
      if (fromSrc !== '-') throw new NotImplementedError('importing from a URL is not supported: use fromSrc=- with the tar as body');
      const repo = one(q.repo);
      const tag = one(q.tag);
      const ref = repo ? (tag ? `${repo}:${tag}` : repo) : undefined;
      const img = await images.importRootfs(bodyStream(req), {
        ...(ref && { ref }),
        changes: many(q.changes),
        ...(one(q.message) && { message: one(q.message)! }),
      });
      ctx.manager.events.publish('image', 'import', img.id, { name: ref ?? img.id });
      return reply.header('content-type', 'application/json').send(Buffer.from(JSON.stringify({ status: img.id }) + '\r\n'));
    }
    if (!fromImage) throw new InvalidParameterError('fromImage or fromSrc is required');
    const platform = one(q.platform);
    if (platform && !/^linux(\/amd64)?$/.test(platform))
      throw new InvalidParameterError(`platform ${platform} is not supported: tvm runs linux/amd64`);
    const tag = one(q.tag);
    const ref = tag ? (tag.startsWith('sha256:') ? `${fromImage}@${tag}` : `${fromImage}:${tag}`) : fromImage;
    const auth = decodeAuth(req.headers['x-registry-auth']);
    // As Docker: the stream starts with the first progress message, so a pull that fails
    // before it (no such image: 404, registry unreachable: 500) answers with its own status.
    let res: ReturnType<typeof beginStream> | undefined;
    const out = (line: string) => writeOut((res ??= beginStream(reply, 'application/json')), line);
    try {
      // progress lines are best effort: writeOut never rejects (false: the client went away)
      const img = await images.pull(ref, { ...(auth && { auth }), onProgress: (p) => void out(progressLine(p)) });
      ctx.manager.events.publish('image', 'pull', ref, { name: ref });
      void img;
    } catch (e) {
      if (!res) throw e;
      await writeOut(res, errorLine((e as Error).message));
    }
    (res ?? beginStream(reply, 'application/json')).end();
  });

  // As dockerd: a chunked stream of JSON messages (docker-py reads it line by line), progress
  // only when `quiet` is off (on by default), and an error after the body was accepted as a
  // JSON error message in that stream rather than a status.
  app.post('/images/load', async (req: FastifyRequest<{ Querystring: Q; Body: unknown }>, reply) => {
    const quiet = qbool(one(req.query.quiet), true);
    const res = beginStream(reply, 'application/json');
    // writeOut never rejects (false: the client went away, and the next write finds it gone)
    const out = (line: string) => void writeOut(res, line);
    try {
      const loaded = await images.load(bodyStream(req), quiet ? undefined : (p) => out(progressLine(p)));
      for (const img of loaded) {
        if (img.repoTags.length === 0) out(JSON.stringify({ stream: `Loaded image ID: ${img.id}\n` }) + '\r\n');
        for (const t of img.repoTags) out(JSON.stringify({ stream: `Loaded image: ${t}\n` }) + '\r\n');
        ctx.manager.events.publish('image', 'load', img.id, { name: img.repoTags[0] ?? img.id });
      }
    } catch (e) {
      const { status, message } = mapError(e);
      if (status >= 500) ctx.log(`POST /images/load: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      out(errorLine(message));
    }
    res.end();
  });

  const save = async (refs: string[], reply: FastifyReply) => {
    if (refs.length === 0) throw new InvalidParameterError('no image names given');
    for (const r of refs) await images.resolve(r);
    const tar = await images.save(refs);
    return reply.header('content-type', 'application/x-tar').send(tar);
  };
  app.get('/images/get', async (req: FastifyRequest<{ Querystring: Q }>, reply) => save(many(req.query.names), reply));

  app.post('/images/prune', async (req: FastifyRequest<{ Querystring: Q }>) => {
    const f = parseFilters(one(req.query.filters));
    checkFilterKeys(f, ['dangling', 'label', 'until']);
    const danglingOnly = !(f.dangling ?? ['true']).includes('false');
    const used = m.imagesInUse();
    const deleted: { Untagged?: string; Deleted?: string }[] = [];
    const all = await images.list();
    // an image others were built on (a build step, a committed container's image) stays, as in Docker
    const parents = new Set(all.map((i) => i.parent).filter((p): p is string => p !== undefined));
    for (const img of all) {
      if (used.has(img.id) || parents.has(img.id)) continue;
      if (danglingOnly && img.repoTags.length > 0) continue;
      const refs = img.repoTags.length > 0 ? img.repoTags : [img.id];
      // prune removes what it can: an image still in use, or removed meanwhile, is left as dockerd's prune leaves it
      for (const r of refs) deleted.push(...(await images.remove(r, { force: false, inUse: used }).catch(() => [])));
    }
    return { ImagesDeleted: deleted.length > 0 ? deleted : null, SpaceReclaimed: 0 };
  });

  // Image names contain slashes (`registry:5000/org/app`): one wildcard route per method.
  app.get('/images/*', async (req: FastifyRequest<{ Params: { '*': string }; Querystring: Q }>, reply) => {
    const p = req.params['*'];
    const mm = /^(.+)\/(json|get|history)$/.exec(p);
    if (!mm) throw new NotFoundError('page not found');
    const [, name, what] = mm as unknown as [string, string, string];
    if (what === 'get') return save([name], reply);
    const img = await images.resolve(name);
    if (what === 'json') return imageInspect(img);
    if (images.history) return images.history(name);
    return [
      {
        Id: img.id,
        Created: Math.floor(Date.parse(img.created) / 1000) || 0,
        CreatedBy: '',
        Tags: img.repoTags,
        Size: img.size,
        Comment: '',
      },
    ];
  });

  app.post('/images/*', async (req: FastifyRequest<{ Params: { '*': string }; Querystring: Q }>, reply) => {
    const p = req.params['*'];
    const mm = /^(.+)\/(tag|push)$/.exec(p);
    if (!mm) throw new NotFoundError('page not found');
    const [, name, what] = mm as unknown as [string, string, string];
    if (what === 'push') return pushRoute(ctx, name, one(req.query.tag), decodeAuth(req.headers['x-registry-auth']), reply);
    const repo = one(req.query.repo);
    if (!repo) throw new InvalidParameterError('repository name must have at least one component');
    const tag = one(req.query.tag);
    const newRef = tag ? `${repo}:${tag}` : repo;
    const img = await images.resolve(name);
    await images.tag(name, newRef);
    // The client sends the normalized name (docker.io/library/bb); dockerd's event says bb:evtag.
    ctx.manager.events.publish('image', 'tag', img.id, { name: familiarRef(newRef) });
    return reply.code(201).send();
  });

  app.delete('/images/*', async (req: FastifyRequest<{ Params: { '*': string }; Querystring: Q }>) => {
    const name = req.params['*'];
    const force = qbool(one(req.query.force));
    const img = await images.resolve(name);
    const inUse = m.imagesInUse();
    const res = await images.remove(name, { force, inUse });
    // as Docker: deleting an image also deletes the untagged images it was built on that
    // nothing else uses (a build's step images), up the parent chain
    if (res.some((r) => r.Deleted === img.id)) {
      for (let parent = img.parent; parent !== undefined;) {
        const all = await images.list();
        const p = all.find((i) => i.id === parent);
        if (!p || p.repoTags.length > 0 || inUse.has(p.id) || all.some((i) => i.parent === p.id)) break;
        const gone = await images.remove(p.id, { force: false, inUse });
        res.push(...gone.filter((r) => r.Deleted));
        parent = p.parent;
      }
    }
    for (const r of res) {
      if (r.Untagged) ctx.manager.events.publish('image', 'untag', img.id, { name: r.Untagged });
      if (r.Deleted) ctx.manager.events.publish('image', 'delete', r.Deleted, { name });
    }
    return res;
  });
}
