/**
 * The daemon's listeners (`-H`): unix sockets (mode 0660, group configurable, stale sockets
 * replaced only when nothing answers on them) and TCP, with mutual TLS unless explicitly
 * forced insecure. Every listener hands requests and upgrades to the one API server.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { chmod, chown, readFile, unlink, mkdir } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConflictError, InvalidParameterError } from '../errors.js';

export interface TlsOptions {
  verify: boolean;
  ca?: string;
  cert?: string;
  key?: string;
}

export type HostSpec = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export function parseHost(h: string): HostSpec {
  if (h.startsWith('unix://')) {
    const p = h.slice('unix://'.length);
    if (!p.startsWith('/')) throw new InvalidParameterError(`invalid -H ${h}: the socket path must be absolute`);
    return { kind: 'unix', path: p };
  }
  if (h.startsWith('tcp://')) {
    const u = new URL(h.replace(/^tcp:/, 'http:'));
    const port = u.port === '' ? 2376 : Number(u.port);
    return { kind: 'tcp', host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1', port };
  }
  if (h.startsWith('/')) return { kind: 'unix', path: h };
  throw new InvalidParameterError(`invalid -H ${h}: use unix:///path or tcp://host:port`);
}

/** the group dockerd gives its socket unless told otherwise (`dockerd -G`) */
export const DEFAULT_SOCKET_GROUP = 'docker';

async function groupId(group: string): Promise<number> {
  if (/^\d+$/.test(group)) return Number(group);
  const line = (await readFile('/etc/group', 'utf8')).split('\n').find((l) => l.split(':')[0] === group);
  if (!line) throw new InvalidParameterError(`group ${group} not found in /etc/group`);
  return Number(line.split(':')[2]);
}

/** Unlinks a leftover socket only if no daemon answers on it. */
async function clearStaleSocket(p: string): Promise<void> {
  const alive = await new Promise<boolean>((resolve) => {
    const s = net.connect(p);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (alive) throw new ConflictError(`another daemon is listening on ${p}`);
  // a stale socket nobody answers on: bind() below fails loudly if it is still in the way
  await unlink(p).catch(() => {});
}

export interface Listener {
  address: string;
  close(): Promise<void>;
}

export async function listen(
  api: http.Server,
  spec: HostSpec,
  o: { group?: string; tls?: TlsOptions; insecureTcp?: boolean },
): Promise<Listener> {
  const forward = (server: http.Server | https.Server) => {
    server.on('request', (req, res) => api.emit('request', req, res));
    server.on('upgrade', (req, sock, head) => api.emit('upgrade', req, sock, head));
    // Long-lived streams (events, logs -f, attach) must not be cut by idle timeouts.
    server.requestTimeout = 0;
    server.headersTimeout = 60_000;
    server.keepAliveTimeout = 5_000;
    return server;
  };
  if (spec.kind === 'unix') {
    await mkdir(path.dirname(spec.path), { recursive: true });
    await clearStaleSocket(spec.path);
    const server = forward(http.createServer());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(spec.path, () => resolve());
    });
    await chmod(spec.path, 0o660);
    // dockerd's default --group is "docker": used when that group exists, root's otherwise
    const gid =
      o.group !== undefined
        ? await groupId(o.group)
        : await groupId(DEFAULT_SOCKET_GROUP).catch((e: unknown) => {
            if (e instanceof InvalidParameterError) return undefined; // no docker group: the socket stays root's
            throw e;
          });
    if (gid !== undefined) await chown(spec.path, 0, gid);
    return {
      address: `unix://${spec.path}`,
      // the socket file may already be gone; nothing to undo
      close: () => closeServer(server).then(() => unlink(spec.path).catch(() => {})),
    };
  }
  let server: http.Server | https.Server;
  if (o.tls) {
    if (!o.tls.cert || !o.tls.key) throw new InvalidParameterError('TLS needs --tlscert and --tlskey');
    if (o.tls.verify && !o.tls.ca) throw new InvalidParameterError('--tlsverify needs --tlscacert');
    server = forward(
      https.createServer({
        cert: readFileSync(o.tls.cert),
        key: readFileSync(o.tls.key),
        ...(o.tls.ca && { ca: readFileSync(o.tls.ca) }),
        requestCert: o.tls.verify,
        rejectUnauthorized: o.tls.verify,
        minVersion: 'TLSv1.2',
      }),
    );
  } else {
    if (!o.insecureTcp) {
      throw new InvalidParameterError(
        `refusing to listen on tcp://${spec.host}:${spec.port} without TLS: anyone who reaches it is root on this host. Use --tlsverify --tlscacert --tlscert --tlskey, or --insecure-tcp to force it`,
      );
    }
    server = forward(http.createServer());
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(spec.port, spec.host, () => resolve());
  });
  const addr = server.address() as net.AddressInfo;
  return { address: `tcp://${spec.host}:${addr.port}`, close: () => closeServer(server) };
}

function closeServer(s: http.Server | https.Server): Promise<void> {
  return new Promise((resolve) => {
    s.close(() => resolve());
    s.closeAllConnections();
  });
}
