/**
 * `tvm daemon`: loads the parts, recovers every container (supervisors outlive the daemon),
 * serves the Docker Engine API on its listeners, writes a pid file, and shuts down gracefully
 * on SIGTERM/SIGINT leaving the containers running.
 */
import { mkdir, readFile, unlink } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { FastifyInstance } from 'fastify';
import { ConflictError, InvalidParameterError } from '../errors.js';
import { buildApi } from '../api/server.js';
import { ContainerManager } from '../runtime/manager.js';
import type { IsolationKind } from '../runtime/types.js';
import { loadComponents, type Components } from './components.js';
import { listen, parseHost, type Listener, type TlsOptions } from './listen.js';
import { writeFileAtomic } from '../atomic-file.js';
import { SERVER_VERSION } from '../api/streaming.js';
import { resolveRemap, rootOf } from '../runtime/userns.js';
import { processAliveSync } from '../process-alive.js';
import { checkReachable } from './userns-dirs.js';
import { NetworkManager } from '../network/manager.js';

export const DEFAULT_HOST = 'unix:///run/tvm/tvm.sock';

export interface DaemonOptions {
  hosts: string[];
  dataRoot: string;
  execRoot: string;
  defaultIsolation: IsolationKind;
  group?: string;
  tls?: TlsOptions;
  insecureTcp?: boolean;
  insecureRegistries?: string[];
  /** `--max-concurrent-downloads`: layer downloads at once per pull (Docker's default: 3) */
  maxConcurrentDownloads?: number;
  /** `--log-opt`: json-file options every container gets unless it sets them (Docker's log-opts) */
  logOpts?: Record<string, string>;
  /** `--storage-opt size=`: virtual size of the image base disks (bytes) */
  baseDiskSize?: number;
  /**
   * `--userns-remap`: default | user | user:group | uid | uid:gid. Containers (container
   * isolation, unless `--userns=host`) run in a user namespace whose root is the user's first
   * subordinate id (/etc/subuid, /etc/subgid)
   */
  usernsRemap?: string;
  /** `--vm-backend`: kvm | tcg | auto (default) */
  vmBackend?: 'kvm' | 'tcg' | 'auto';
  /**
   * bridge networks: the default bridge's device ('none': none), --bip, --default-address-pool;
   * absent: no networks (containers get none or host)
   */
  network?: { bridge: string; bip?: string; pools?: { base: string; size: number }[] };
  /** injected parts (tests); default: the real ones */
  components?: Components;
  log?: (msg: string) => void;
}

export interface RunningDaemon {
  manager: ContainerManager;
  app: FastifyInstance;
  addresses: string[];
  close(): Promise<void>;
}

/** Is `pid` a live tvm daemon? (A pid file on the data root can outlive a reboot and its pid be reused.) */
function isLiveDaemon(pid: number): boolean {
  if (pid === process.pid) return true;
  // a killed daemon is a zombie until reaped: kill(pid, 0) would call it alive
  if (!processAliveSync(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('daemon');
  } catch {
    return false;
  }
}

async function takePidFile(file: string): Promise<void> {
  let pid = 0;
  try {
    pid = Number((await readFile(file, 'utf8')).trim());
  } catch {
    // none: first start
  }
  if (Number.isInteger(pid) && pid > 0 && isLiveDaemon(pid)) {
    throw new ConflictError(`a tvm daemon is already running (pid ${pid}, pid file ${file})`);
  }
  await writeFileAtomic(file, `${process.pid}\n`);
}

async function daemonId(dataRoot: string): Promise<string> {
  const f = path.join(dataRoot, 'engine-id');
  try {
    return (await readFile(f, 'utf8')).trim();
  } catch {
    const id = randomUUID();
    await writeFileAtomic(f, id + '\n');
    return id;
  }
}

export async function startDaemon(o: DaemonOptions): Promise<RunningDaemon> {
  const log = o.log ?? ((m: string) => process.stderr.write(`tvm daemon: ${m}\n`));
  if (o.hosts.length === 0) throw new InvalidParameterError('no -H listener given');
  const specs = o.hosts.map(parseHost);
  await mkdir(o.dataRoot, { recursive: true, mode: 0o711 });
  await mkdir(o.execRoot, { recursive: true, mode: 0o711 });
  const pidFile = path.join(o.execRoot, 'tvm.pid');
  // Also on the data root: two daemons sharing container records would corrupt each other.
  const dataPidFile = path.join(o.dataRoot, 'tvm.pid');
  await takePidFile(dataPidFile);
  try {
    await takePidFile(pidFile);
  } catch (e) {
    // start is failing with its own error; a pid file left behind names no live daemon and is taken over
    await unlink(dataPidFile).catch(() => {});
    throw e;
  }
  const listeners: Listener[] = [];
  try {
    const remap = o.usernsRemap !== undefined ? await resolveRemap(o.usernsRemap) : undefined;
    if (remap) {
      await checkReachable(rootOf(remap.maps), [o.dataRoot, o.execRoot]);
      const r = rootOf(remap.maps);
      log(`user namespaces: containers' root is ${r.uid}:${r.gid} on the host (${remap.user}:${remap.group}, /etc/subuid and /etc/subgid)`);
    }
    const components =
      o.components ??
      (await loadComponents({
        dataRoot: o.dataRoot,
        execRoot: o.execRoot,
        ...(o.insecureRegistries && { insecureRegistries: o.insecureRegistries }),
        ...(o.maxConcurrentDownloads !== undefined && { maxConcurrentDownloads: o.maxConcurrentDownloads }),
        ...(o.baseDiskSize !== undefined && { baseDiskSize: o.baseDiskSize }),
        ...(remap && { userns: remap.maps }),
        ...(o.vmBackend && { vmBackend: o.vmBackend }),
        log,
      }));
    let network: NetworkManager | undefined;
    if (o.network) {
      network = new NetworkManager({
        dataRoot: o.dataRoot,
        runRoot: o.execRoot,
        bridge: o.network.bridge,
        ...(o.network.bip && { bip: o.network.bip }),
        ...(o.network.pools && { pools: o.network.pools }),
        log,
      });
      await network.init();
    }
    const manager = new ContainerManager({
      dataRoot: o.dataRoot,
      isolations: components.isolations,
      images: components.images,
      defaultIsolation: o.defaultIsolation,
      log,
      ...(o.logOpts && { logOpts: o.logOpts }),
      ...(network && { network }),
    });
    await manager.init();
    components.bindImagesInUse?.(() => manager.imagesInUse());
    for (const what of (await components.reclaim?.()) ?? []) log(`reclaimed ${what}`);
    const app = await buildApi({
      manager,
      images: components.images,
      info: {
        dataRoot: o.dataRoot,
        execRoot: o.execRoot,
        version: SERVER_VERSION,
        id: await daemonId(o.dataRoot),
        name: os.hostname(),
        ...(remap && { userns: true }),
      },
      log,
    });
    for (const s of specs) {
      listeners.push(
        await listen(app.server, s, {
          ...(o.group !== undefined && { group: o.group }),
          ...(o.tls && { tls: o.tls }),
          ...(o.insecureTcp && { insecureTcp: true }),
        }),
      );
    }
    let closed = false;
    return {
      manager,
      app,
      addresses: listeners.map((l) => l.address),
      async close() {
        if (closed) return;
        closed = true;
        manager.shutdown();
        network?.close();
        await Promise.all(listeners.map((l) => l.close()));
        await app.close();
        // shutting down: a pid file left behind names no live daemon and is taken over at the next start
        await unlink(pidFile).catch(() => {});
        // shutting down: a pid file left behind names no live daemon and is taken over at the next start
        await unlink(dataPidFile).catch(() => {});
      },
    };
  } catch (e) {
    // start is failing with its own error; closing the listeners opened so far is best effort
    await Promise.all(listeners.map((l) => l.close().catch(() => {})));
    // start is failing with its own error; a pid file left behind names no live daemon
    await unlink(pidFile).catch(() => {});
    // start is failing with its own error; a pid file left behind names no live daemon
    await unlink(dataPidFile).catch(() => {});
    throw e;
  }
}

/** Runs until SIGTERM/SIGINT; containers keep running (their supervisors are not our children). */
export async function runDaemon(o: DaemonOptions): Promise<void> {
  const d = await startDaemon(o);
  // One bad request must not take the API away from every container: log loudly, keep serving.
  process.on('uncaughtException', (e) => process.stderr.write(`tvm daemon: BUG: uncaught exception: ${e.stack ?? e.message}\n`));
  process.on('unhandledRejection', (e) =>
    process.stderr.write(`tvm daemon: BUG: unhandled rejection: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`),
  );
  process.stderr.write(
    `tvm daemon ${SERVER_VERSION}: listening on ${d.addresses.join(', ')} (data root ${o.dataRoot}, default isolation ${o.defaultIsolation}, isolations: ${d.manager.availableIsolations().join(', ') || 'none'})\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      process.stderr.write(`tvm daemon: ${sig}, shutting down (containers keep running)\n`);
      // the daemon ends either way: a close that fails resolves the wait as well
      void d.close().then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  // The control connections to the supervisors (which outlive us) would keep the process alive.
  process.exit(0);
}
