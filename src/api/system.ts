/** /_ping, /version, /info, /events, /system/df. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import os from 'node:os';
import { readFileSync } from 'node:fs';
import type { ApiContext } from './context.js';
import { API_VERSION, MIN_API_VERSION, commonHeaders } from './version.js';
import { beginStream, writeOut, SERVER_VERSION } from './streaming.js';
import { parseFilters, checkFilterKeys } from './filters.js';
import { matchEvent, parseTimeArg, type DockerEvent } from '../runtime/events.js';
import { isActive } from '../runtime/state-machine.js';
import { imageSummary } from './images.js';
import { NotImplementedError } from '../errors.js';
import { listJson } from './container-json.js';
import { logSize } from '../runtime/log-file.js';

type Q = Record<string, string | undefined>;

function osRelease(): string {
  try {
    const m = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'));
    return m?.[1] ?? 'Linux';
  } catch {
    return 'Linux';
  }
}

function cgroupVersion(): string {
  try {
    readFileSync('/sys/fs/cgroup/cgroup.controllers');
    return '2';
  } catch {
    return '1';
  }
}

export function registerSystemRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const m = ctx.manager;
  const ping = (_req: FastifyRequest, reply: FastifyReply) => {
    // fastify sends it and reports its own failures: the reply is only thenable
    void reply
      .headers({
        ...commonHeaders(SERVER_VERSION),
        'Builder-Version': '1',
        'Cache-Control': 'no-cache, no-store, must-revalidate',
        Pragma: 'no-cache',
        Swarm: 'inactive',
      })
      .header('content-type', 'text/plain; charset=utf-8')
      .send('OK');
  };
  app.get('/_ping', ping);
  app.head('/_ping', (_req, reply) => {
    // fastify sends it and reports its own failures: the reply is only thenable
    void reply
      .headers({
        ...commonHeaders(SERVER_VERSION),
        'Builder-Version': '1',
        'Cache-Control': 'no-cache, no-store, must-revalidate',
        Pragma: 'no-cache',
        Swarm: 'inactive',
        'Content-Length': '0',
      })
      .header('content-type', 'text/plain; charset=utf-8')
      .send();
  });

  const versionJson = () => ({
    Platform: { Name: 'tvm' },
    Components: [
      {
        Name: 'Engine',
        Version: SERVER_VERSION,
        Details: {
          ApiVersion: API_VERSION,
          MinAPIVersion: MIN_API_VERSION,
          Os: 'linux',
          Arch: 'amd64',
          KernelVersion: os.release(),
          Isolations: m.availableIsolations().join(','),
          DefaultIsolation: m.defaultIsolation,
          NodeVersion: process.version,
          GitCommit: 'tvm',
          GoVersion: `node ${process.version}`,
          BuildTime: '',
          Experimental: 'false',
        },
      },
    ],
    Version: SERVER_VERSION,
    ApiVersion: API_VERSION,
    MinAPIVersion: MIN_API_VERSION,
    GitCommit: 'tvm',
    GoVersion: `node ${process.version}`,
    Os: 'linux',
    Arch: 'amd64',
    KernelVersion: os.release(),
    BuildTime: '',
  });
  app.get('/version', async () => versionJson());

  // `docker login`: Docker checks the credentials against the registry and keeps nothing.
  const authBodySchema = {
    type: 'object',
    properties: {
      username: { type: 'string' },
      password: { type: 'string' },
      email: { type: 'string' },
      serveraddress: { type: 'string' },
      identitytoken: { type: 'string' },
      registrytoken: { type: 'string' },
    },
  } as const;
  app.post<{ Body: { username?: string; password?: string; serveraddress?: string; identitytoken?: string } }>(
    '/auth',
    { schema: { body: authBodySchema } },
    async (req) => {
      const b = req.body ?? {};
      const login = ctx.images.login?.bind(ctx.images);
      if (!login) throw new NotImplementedError('this image store cannot log in to registries');
      await login(b.serveraddress ?? '', {
        ...(b.username !== undefined && { username: b.username }),
        ...(b.password !== undefined && { password: b.password }),
        ...(b.identitytoken !== undefined && { identitytoken: b.identitytoken }),
      });
      return { Status: 'Login Succeeded', IdentityToken: '' };
    },
  );

  app.get('/info', async () => {
    const recs = m.records.all();
    const running = recs.filter((r) => r.state.status === 'running').length;
    const paused = recs.filter((r) => r.state.status === 'paused').length;
    const imgs = await ctx.images.list();
    const isolations = m.availableIsolations();
    return {
      ID: ctx.info.id,
      Containers: recs.length,
      ContainersRunning: running,
      ContainersPaused: paused,
      ContainersStopped: recs.length - running - paused,
      Images: imgs.length,
      Driver: 'tvm',
      DriverStatus: [
        ['Isolations', isolations.join(', ')],
        ['Default isolation', m.defaultIsolation],
        ...(isolations.includes('vm') ? [['VM backend', m.isolationFor('vm').backend ?? 'unknown']] : []),
      ],
      Plugins: {
        Volume: ['local'],
        Network: ctx.manager.network ? ['bridge', 'host', 'null'] : ['host', 'none'],
        Authorization: null,
        Log: ['json-file'],
      },
      MemoryLimit: true,
      SwapLimit: true,
      CpuCfsPeriod: true,
      CpuCfsQuota: true,
      CPUShares: true,
      CPUSet: true,
      PidsLimit: true,
      IPv4Forwarding: false,
      Debug: false,
      NFd: 0,
      OomKillDisable: false,
      NGoroutines: 0,
      SystemTime: new Date().toISOString(),
      LoggingDriver: 'json-file',
      CgroupDriver: 'cgroupfs',
      CgroupVersion: cgroupVersion(),
      NEventsListener: 0,
      KernelVersion: os.release(),
      OperatingSystem: osRelease(),
      OSVersion: '',
      OSType: 'linux',
      Architecture: os.machine(),
      IndexServerAddress: 'https://index.docker.io/v1/',
      RegistryConfig: { IndexConfigs: {}, InsecureRegistryCIDRs: ['127.0.0.0/8'], Mirrors: [] },
      NCPU: os.cpus().length,
      MemTotal: os.totalmem(),
      DockerRootDir: ctx.info.dataRoot,
      Name: os.hostname(),
      Labels: [],
      ExperimentalBuild: false,
      ServerVersion: SERVER_VERSION,
      Runtimes: Object.fromEntries(isolations.map((k) => [k, { path: `tvm-${k}` }])),
      DefaultRuntime: m.defaultIsolation,
      Swarm: { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null },
      LiveRestoreEnabled: true,
      Isolation: m.defaultIsolation,
      InitBinary: '',
      // every container gets Docker's default seccomp profile unless it asks otherwise
      SecurityOptions: ['name=seccomp,profile=builtin', ...(ctx.info.userns ? ['name=userns'] : [])],
      Warnings: isolations.includes('vm') ? [] : ['WARNING: the vm isolation is not available in this daemon'],
    };
  });

  app.get('/events', async (req: FastifyRequest<{ Querystring: Q }>, reply) => {
    const q = req.query;
    const f = parseFilters(q.filters);
    checkFilterKeys(f, [
      'container',
      'event',
      'image',
      'label',
      'type',
      'volume',
      'network',
      'daemon',
      'scope',
      'node',
      'plugin',
      'service',
      'config',
      'secret',
    ]);
    const since = q.since ? parseTimeArg(q.since) : undefined;
    const until = q.until ? parseTimeArg(q.until) : undefined;
    const res = beginStream(reply, 'application/json');
    const queue: DockerEvent[] = [];
    let wake: (() => void) | undefined;
    const unsubscribe = m.events.subscribe((ev) => {
      if (matchEvent(ev, f)) {
        queue.push(ev);
        wake?.();
      }
    });
    let closed = false;
    res.on('close', () => {
      closed = true;
      wake?.();
    });
    try {
      if (since !== undefined) {
        for (const ev of m.events.history(since, until)) {
          if (matchEvent(ev, f) && !(await writeOut(res, JSON.stringify(ev) + '\n'))) return;
        }
        // Events already replayed from history may also be queued live: drop them.
        const last = m.events.history(since, until).at(-1)?.timeNano ?? 0;
        for (let i = queue.length - 1; i >= 0; i--) if (queue[i]!.timeNano <= last) queue.splice(i, 1);
      }
      let timer: NodeJS.Timeout | undefined;
      if (until !== undefined) {
        const ms = Number(until / 1_000_000n) - Date.now();
        if (ms <= 0) return;
        timer = setTimeout(() => {
          closed = true;
          wake?.();
        }, ms);
      }
      try {
        while (!closed) {
          while (queue.length > 0) {
            const ev = queue.shift()!;
            if (until !== undefined && BigInt(ev.timeNano) > until) return;
            if (!(await writeOut(res, JSON.stringify(ev) + '\n'))) return;
          }
          await new Promise<void>((r) => (wake = r));
          wake = undefined;
        }
      } finally {
        if (timer) clearTimeout(timer);
      }
    } finally {
      unsubscribe();
      res.end();
    }
  });

  app.get('/system/df', async () => {
    const recs = m.records.all();
    const imgs = await ctx.images.list();
    const used = m.imagesInUse();
    const users = m.volumeUsers();
    const containers = [];
    for (const r of recs) containers.push(listJson(r, { rw: await logSize(r.spec.logPath), rootFs: 0 }, ctx.manager.network));
    return {
      LayersSize: imgs.reduce((a, i) => a + i.size, 0),
      Images: imgs.map((i) => imageSummary(i, recs.filter((r) => r.imageId === i.id).length)),
      Containers: containers,
      Volumes: m.volumes.list().map((v) => ({ ...v, UsageData: { Size: -1, RefCount: users.get(v.Name)?.length ?? 0 } })),
      BuildCache: [],
      _tvm: { activeContainers: recs.filter((r) => isActive(r.state.status)).length, imagesInUse: used.size },
    };
  });
}
