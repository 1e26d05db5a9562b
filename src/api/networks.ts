/** /networks: list, inspect, create, remove, connect, disconnect, prune (bridge driver; host and none as Docker shows them). */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts';
import type { ApiContext } from './context.js';
import { idParamsSchema } from './schemas.js';
import { checkFilterKeys, parseFilters, type Filters } from './filters.js';
import { NotImplementedError } from '../errors.js';
import { NetworkManager, type NetworkRecord } from '../network/manager.js';
import type { ContainerManager } from '../runtime/manager.js';
import { goMap } from './go-map.js';

type Q = Record<string, string | undefined>;

export const networkCreateSchema = {
  type: 'object',
  properties: {
    Name: { type: 'string' },
    Driver: { type: ['string', 'null'] },
    Scope: { type: ['string', 'null'] },
    Internal: { type: ['boolean', 'null'] },
    Attachable: { type: ['boolean', 'null'] },
    Ingress: { type: ['boolean', 'null'] },
    EnableIPv6: { type: ['boolean', 'null'] },
    EnableIPv4: { type: ['boolean', 'null'] },
    CheckDuplicate: { type: ['boolean', 'null'] },
    ConfigOnly: { type: ['boolean', 'null'] },
    IPAM: {
      type: ['object', 'null'],
      properties: {
        Driver: { type: ['string', 'null'] },
        // docker-py sends null for what is not set
        Config: {
          type: ['array', 'null'],
          items: {
            type: 'object',
            properties: {
              Subnet: { type: ['string', 'null'] },
              Gateway: { type: ['string', 'null'] },
              IPRange: { type: ['string', 'null'] },
              AuxiliaryAddresses: { type: ['object', 'null'] },
            },
          },
        },
        Options: { type: ['object', 'null'], additionalProperties: { type: 'string' } },
      },
    },
    Options: { type: ['object', 'null'], additionalProperties: { type: 'string' } },
    Labels: { type: ['object', 'null'], additionalProperties: { type: 'string' } },
  },
} as const;

const endpointSchema = {
  type: ['object', 'null'],
  properties: {
    IPAMConfig: { type: ['object', 'null'], properties: { IPv4Address: { type: 'string' } } },
    Aliases: { type: ['array', 'null'], items: { type: 'string' } },
  },
} as const;

function pseudoJson(name: 'host' | 'none'): Record<string, unknown> {
  const p = NetworkManager.pseudo(name);
  return {
    Name: p.Name,
    Id: p.Id,
    Created: '0001-01-01T00:00:00Z',
    Scope: 'local',
    Driver: p.Driver,
    EnableIPv4: true,
    EnableIPv6: false,
    IPAM: { Driver: 'default', Options: null, Config: null },
    Internal: false,
    Attachable: false,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: {},
    Options: {},
    Labels: {},
  };
}

function networkJson(n: NetworkRecord, withContainers: boolean): Record<string, unknown> {
  const containers: Record<string, unknown> = {};
  if (withContainers) {
    const prefix = n.IPAM.Config[0]!.Subnet.split('/')[1];
    for (const [id, m] of Object.entries(n.members)) {
      if (!m.endpoint) continue;
      containers[id] = {
        Name: m.name,
        EndpointID: m.endpoint.id,
        MacAddress: m.endpoint.mac,
        IPv4Address: `${m.endpoint.ip}/${prefix}`,
        IPv6Address: '',
      };
    }
  }
  return {
    Name: n.Name,
    Id: n.Id,
    Created: n.Created,
    Scope: 'local',
    Driver: n.Driver,
    EnableIPv4: true,
    EnableIPv6: false,
    IPAM: {
      Driver: n.IPAM.Driver,
      Options: n.IPAM.Options,
      Config: n.IPAM.Config.map((c) => ({ Subnet: c.Subnet, Gateway: c.Gateway, ...(c.IPRange && { IPRange: c.IPRange }) })),
    },
    Internal: n.Internal,
    Attachable: n.Attachable,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: containers,
    Options: goMap(n.Options),
    Labels: goMap(n.Labels),
  };
}

function labelsMatch(labels: Record<string, string>, wanted: string[]): boolean {
  return wanted.every((l) => {
    const i = l.indexOf('=');
    return i < 0 ? l in labels : labels[l.slice(0, i)] === l.slice(i + 1);
  });
}

const LIST_FILTERS = ['dangling', 'driver', 'id', 'label', 'name', 'scope', 'type'];

function matches(j: Record<string, unknown>, f: Filters, builtin: boolean, used: boolean): boolean {
  const any = (key: string, test: (v: string) => boolean) => !f[key]?.length || f[key].some(test);
  return (
    any('driver', (v) => v === j.Driver) &&
    any('id', (v) => (j.Id as string).startsWith(v)) &&
    any('name', (v) => (j.Name as string).includes(v)) &&
    any('scope', (v) => v === 'local') &&
    any('type', (v) => (v === 'builtin') === builtin) &&
    any('dangling', (v) => (v === 'true' || v === '1' ? !used && !builtin : used || builtin)) &&
    (!f.label?.length || labelsMatch(j.Labels as Record<string, string>, f.label))
  );
}

function networks(m: ContainerManager): NetworkManager {
  if (!m.network) throw new NotImplementedError('this tvm daemon has no networks');
  return m.network;
}

export function registerNetworkRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const m = ctx.manager;

  app.get('/networks', async (req: FastifyRequest<{ Querystring: Q }>) => {
    const f = parseFilters(req.query.filters);
    checkFilterKeys(f, LIST_FILTERS);
    const out: Record<string, unknown>[] = [];
    for (const n of m.network?.list() ?? []) {
      const j = networkJson(n, false);
      if (matches(j, f, n.Name === 'bridge', Object.keys(n.members).length > 0)) out.push(j);
    }
    for (const name of ['host', 'none'] as const) {
      const j = pseudoJson(name);
      if (matches(j, f, true, true)) out.push(j);
    }
    return out;
  });

  app.get('/networks/:id', async (req: FastifyRequest<{ Params: { id: string } }>) => {
    const ref = req.params.id;
    for (const name of ['host', 'none'] as const) {
      if (ref === name || ref === NetworkManager.pseudo(name).Id) return pseudoJson(name);
    }
    return networkJson(networks(m).get(ref), true);
  });

  app.withTypeProvider<JsonSchemaToTsProvider>().post('/networks/create', { schema: { body: networkCreateSchema } }, async (req, reply) => {
    const r = await networks(m).create(req.body ?? {});
    const n = networks(m).get(r.Id);
    m.events.publish('network', 'create', r.Id, { name: n.Name, type: 'bridge' });
    return reply.code(201).send(r);
  });

  app.delete('/networks/:id', async (req: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const n = await networks(m).remove(req.params.id);
    m.events.publish('network', 'destroy', n.Id, { name: n.Name, type: 'bridge' });
    return reply.code(204).send();
  });

  // params and bodies typed from their schemas (json-schema-to-ts)
  const typed = app.withTypeProvider<JsonSchemaToTsProvider>();
  typed.post(
    '/networks/:id/connect',
    {
      schema: {
        params: idParamsSchema,
        body: {
          type: 'object',
          required: ['Container'],
          properties: { Container: { type: 'string' }, EndpointConfig: endpointSchema },
        } as const,
      },
    },
    async (req, reply) => {
      await m.connectNetwork(req.params.id, req.body.Container, req.body.EndpointConfig ?? undefined);
      return reply.code(200).send();
    },
  );

  typed.post(
    '/networks/:id/disconnect',
    {
      schema: {
        params: idParamsSchema,
        body: {
          type: 'object',
          required: ['Container'],
          properties: { Container: { type: 'string' }, Force: { type: 'boolean' } },
        } as const,
      },
    },
    async (req, reply) => {
      await m.disconnectNetwork(req.params.id, req.body.Container);
      return reply.code(200).send();
    },
  );

  app.post('/networks/prune', async (req: FastifyRequest<{ Querystring: Q }>) => {
    const f = parseFilters(req.query.filters);
    checkFilterKeys(f, ['label', 'label!', 'until']);
    const deleted: string[] = [];
    for (const n of m.network?.unused() ?? []) {
      if (f.label?.length && !labelsMatch(n.Labels, f.label)) continue;
      if (f['label!']?.length && f['label!'].some((l) => labelsMatch(n.Labels, [l]))) continue;
      if (f.until?.length) {
        const t = f.until[0]!;
        const limit = /^\d+$/.test(t) ? Number(t) * 1000 : Date.parse(t);
        if (!(Date.parse(n.Created) < limit)) continue;
      }
      await networks(m).remove(n.Id);
      m.events.publish('network', 'destroy', n.Id, { name: n.Name, type: 'bridge' });
      deleted.push(n.Name);
    }
    return { NetworksDeleted: deleted.length > 0 ? deleted : null };
  });
}
