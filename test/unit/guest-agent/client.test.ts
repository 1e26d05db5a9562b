/** AgentClient against a fake agent on a unix socket: correlation, streams, failures, vsock. */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FormatError } from '../../../src/errors.js';
import { AgentClient, unixConnector, vsockConnector } from '../../../src/guest-agent/client.js';
import { encodeFrame, FrameDecoder } from '../../../src/guest-agent/framing.js';
import { AgentError, decodeRequest, type Request } from '../../../src/guest-agent/protocol.js';

let dir: string;
let servers: net.Server[] = [];

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'tvmc-'));
});
afterEach(() => {
  for (const s of servers) s.close();
  servers = [];
  rmSync(dir, { recursive: true, force: true });
});

const send = (s: net.Socket, o: unknown) => s.write(encodeFrame(Buffer.from(JSON.stringify(o))));
const hello = { v: 1, type: 'hello', version: 1, agent: 'fake', pid: 4242 };

/** A fake agent: answers hello, then hands each request to onRequest. */
function fakeAgent(
  onRequest: (sock: net.Socket, req: Request) => void,
  onStream?: (sock: net.Socket, h: Record<string, unknown>) => void,
): string {
  const p = path.join(dir, 'agent.sock');
  const server = net.createServer((sock) => {
    const dec = new FrameDecoder();
    let greeted = false;
    sock.on('data', (d) => {
      for (const f of dec.push(d)) {
        const m = decodeRequest(f) as unknown as Record<string, unknown>;
        if (!greeted) {
          greeted = true;
          send(sock, hello);
          if (m.kind === 'stream') onStream?.(sock, m);
          continue;
        }
        onRequest(sock, m as unknown as Request);
      }
    });
    sock.on('error', () => {});
  });
  server.listen(p);
  servers.push(server);
  return p;
}

describe('AgentClient', () => {
  it('correlates out-of-order replies by id', async () => {
    const held: { sock: net.Socket; req: Request }[] = [];
    const p = fakeAgent((sock, req) => {
      held.push({ sock, req });
      if (held.length === 2) {
        // answer the second first
        send(sock, { v: 1, type: 'ok', id: held[1]!.req.id, which: 'second' });
        send(sock, { v: 1, type: 'ok', id: held[0]!.req.id, which: 'first' });
      }
    });
    const c = await AgentClient.connect(unixConnector(p));
    expect(c.agentPid).toBe(4242);
    const [a, b] = await Promise.all([c.request('state'), c.request('stats')]);
    expect(a.which).toBe('first');
    expect(b.which).toBe('second');
    expect(held.map((h) => h.req.type)).toEqual(['state', 'stats']);
    c.close();
  });

  it('turns error replies into AgentError and keeps going', async () => {
    const p = fakeAgent((sock, req) => {
      if (req.type === 'pause') send(sock, { v: 1, type: 'error', id: req.id, code: 'ERR_STATE', message: 'container is not running' });
      else send(sock, { v: 1, type: 'ok', id: req.id, status: 'created' });
    });
    const c = await AgentClient.connect(unixConnector(p));
    await expect(c.pause()).rejects.toBeInstanceOf(AgentError);
    expect((await c.state()).status).toBe('created');
    c.close();
  });

  it('fails every pending request when the agent goes away, and later ones at once', async () => {
    const p = fakeAgent((sock) => sock.destroy());
    const c = await AgentClient.connect(unixConnector(p));
    await expect(c.wait()).rejects.toThrow(/closed/);
    expect(c.closed).toBe(true);
    await expect(c.state()).rejects.toThrow(/closed/);
  });

  it('treats a malformed reply as a protocol error and closes', async () => {
    const p = fakeAgent((sock, req) => send(sock, { v: 1, type: 'surprise', id: req.id }));
    const c = await AgentClient.connect(unixConnector(p));
    await expect(c.state()).rejects.toBeInstanceOf(FormatError);
    expect(c.closed).toBe(true);
  });

  it('treats a reply to an unknown id as a protocol error', async () => {
    const p = fakeAgent((sock, req) => send(sock, { v: 1, type: 'ok', id: req.id + 100 }));
    const c = await AgentClient.connect(unixConnector(p));
    await expect(c.state()).rejects.toThrow(/unknown request id/);
  });

  it('fails the handshake on a version error', async () => {
    const p = path.join(dir, 'v.sock');
    const server = net.createServer((sock) => {
      sock.once('data', () => send(sock, { v: 1, type: 'error', code: 'ERR_VERSION', message: 'no common protocol version' }));
    });
    server.listen(p);
    servers.push(server);
    await expect(AgentClient.connect(unixConnector(p))).rejects.toThrow('no common protocol version');
  });

  it('opens stream connections that carry raw bytes after the hello, including bytes sent with it', async () => {
    const p = fakeAgent(
      () => {},
      (sock, h) => {
        expect(h).toMatchObject({ kind: 'stream', stream: 'stdout', exec: 'e1' });
        sock.end('raw output');
      },
    );
    const c = await AgentClient.connect(unixConnector(p));
    const s = await c.openStream('stdout', 'e1');
    const chunks: Buffer[] = [];
    for await (const d of s) chunks.push(d as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('raw output');
    c.close();
  });

  it('reaches the agent through the VMM vsock proxy handshake', async () => {
    const proxy = path.join(dir, 'vsock.sock');
    let asked = '';
    const server = net.createServer((sock) => {
      sock.once('data', (d) => {
        asked = d.toString();
        sock.write('OK 1073741824\n');
        // from here on this is the agent
        const dec = new FrameDecoder();
        sock.on('data', (x) => {
          for (const f of dec.push(x)) {
            const m = decodeRequest(f);
            if (m.type === 'hello') send(sock, hello);
            else send(sock, { v: 1, type: 'ok', id: m.id, status: 'running' });
          }
        });
      });
    });
    server.listen(proxy);
    servers.push(server);
    const c = await AgentClient.connect(vsockConnector(proxy, 1024));
    expect(asked).toBe('CONNECT 1024\n');
    expect((await c.state()).status).toBe('running');
    c.close();
  });

  it('reports a refused vsock CONNECT', async () => {
    const proxy = path.join(dir, 'vsock2.sock');
    const server = net.createServer((sock) => sock.once('data', () => sock.end('NO\n')));
    server.listen(proxy);
    servers.push(server);
    await expect(AgentClient.connect(vsockConnector(proxy, 1024))).rejects.toThrow(/refused CONNECT 1024/);
  });
});
