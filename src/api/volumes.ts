/** /volumes: create, list, inspect, remove, prune (local driver). */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts';
import type { ApiContext } from './context.js';
import { parseFilters, checkFilterKeys } from './filters.js';
import { qbool } from './hijack.js';
import type { VolumeRecord } from '../runtime/volumes.js';
import { goMap } from './go-map.js';

type Q = Record<string, string | undefined>;

export const volumeCreateSchema = {
  type: 'object',
  properties: {
    Name: { type: 'string' },
    Driver: { type: 'string' },
    DriverOpts: { type: ['object', 'null'], additionalProperties: { type: 'string' } },
    Labels: { type: ['object', 'null'], additionalProperties: { type: 'string' } },
  },
} as const;

function volumeJson(v: VolumeRecord): Record<string, unknown> {
  const { Anonymous: _a, ...rest } = v;
  return { ...rest, Labels: goMap(v.Anonymous ? { ...v.Labels, 'com.docker.volume.anonymous': '' } : v.Labels) };
}

export function registerVolumeRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const m = ctx.manager;
  const vols = m.volumes;

  app.get('/volumes', async (req: FastifyRequest<{ Querystring: Q }>) => {
    const f = parseFilters(req.query.filters);
    checkFilterKeys(f, ['dangling', 'name', 'driver', 'label']);
    const users = m.volumeUsers();
    const list = vols.list().filter((v) => {
      if (f.dangling?.length && (f.dangling.includes('true') || f.dangling.includes('1')) === users.has(v.Name)) return false;
      if (f.name?.length && !f.name.some((n) => v.Name.includes(n))) return false;
      if (f.driver?.length && !f.driver.includes(v.Driver)) return false;
      if (
        f.label?.length &&
        !f.label.every((l) => (l.includes('=') ? v.Labels[l.split('=')[0]!] === l.slice(l.indexOf('=') + 1) : l in v.Labels))
      )
        return false;
      return true;
    });
    return { Volumes: list.map(volumeJson), Warnings: [] };
  });

  app.withTypeProvider<JsonSchemaToTsProvider>().post('/volumes/create', { schema: { body: volumeCreateSchema } }, async (req, reply) => {
    const b = req.body ?? {};
    const { volume, created } = await vols.create({
      ...(b.Name && { name: b.Name }),
      ...(b.Driver && { driver: b.Driver }),
      ...(b.DriverOpts && { options: b.DriverOpts }),
      ...(b.Labels && { labels: b.Labels }),
    });
    if (created) m.events.publish('volume', 'create', volume.Name, { driver: 'local' });
    return reply.code(201).send(volumeJson(volume));
  });

  app.get('/volumes/:name', async (req: FastifyRequest<{ Params: { name: string } }>) => volumeJson(vols.get(req.params.name)));

  app.delete('/volumes/:name', async (req: FastifyRequest<{ Params: { name: string }; Querystring: Q }>, reply) => {
    await vols.remove(req.params.name, m.volumeUsers(), qbool(req.query.force));
    m.events.publish('volume', 'destroy', req.params.name, { driver: 'local' });
    return reply.code(204).send();
  });

  app.post('/volumes/prune', async (req: FastifyRequest<{ Querystring: Q }>) => {
    const f = parseFilters(req.query.filters);
    checkFilterKeys(f, ['label', 'label!', 'all']);
    // API >= 1.42: only anonymous volumes unless all=true.
    const all = (f.all ?? []).some((v) => v === 'true' || v === '1');
    const users = m.volumeUsers();
    const deleted: string[] = [];
    for (const v of vols.list()) {
      if (users.has(v.Name) || (!all && !v.Anonymous)) continue;
      await vols.remove(v.Name, users);
      m.events.publish('volume', 'destroy', v.Name, { driver: 'local' });
      deleted.push(v.Name);
    }
    return { VolumesDeleted: deleted, SpaceReclaimed: 0 };
  });
}
