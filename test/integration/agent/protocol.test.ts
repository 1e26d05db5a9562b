/** The real agent, spoken to over its socket: handshake, framing errors, request errors. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient, unixConnector } from '../../../src/guest-agent/client.js';
import { FrameDecoder } from '../../../src/guest-agent/framing.js';
import { decodeReply, encodeMessage } from '../../../src/guest-agent/protocol.js';
import { spawnSupervisor, supervisorPid } from '../../../src/runtime/host/supervisor.js';

const NATIVE = path.resolve(import.meta.dirname, '../../../native');
const AGENT = path.join(NATIVE, 'build/tvm-agent');
let dir: string;

function raw(payloads: Buffer[]): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection({ path: path.join(dir, 'agent.sock') });
    const dec = new FrameDecoder();
    const got: unknown[] = [];
    s.on('data', (d) => {
      for (const f of dec.push(d)) got.push(decodeReply(f));
    });
    s.on('error', reject);
    s.on('close', () => resolve(got));
    for (const p of payloads) s.write(p);
  });
}

function frame(text: string): Buffer {
  const b = Buffer.from(text);
  const h = Buffer.alloc(4);
  h.writeUInt32BE(b.length);
  return Buffer.concat([h, b]);
}

beforeAll(async () => {
  execFileSync('make', ['-s', '-C', NATIVE]);
  dir = mkdtempSync('/tmp/tvma-');
  await spawnSupervisor(AGENT, dir, 30);
});

afterAll(async () => {
  const pid = await supervisorPid(dir);
  if (pid) {
    const c = await AgentClient.connect(unixConnector(path.join(dir, 'agent.sock')));
    // teardown: a supervisor that already went is what we want
    await c.shutdown().catch(() => {});
    c.close();
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('agent protocol against tvm-agent', () => {
  it('daemonizes: pid file names a live process in its own session, socket ready on return', async () => {
    const pid = await supervisorPid(dir);
    expect(pid).toBeGreaterThan(0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // session id (field 6) is not ours and it is not a session leader (double fork)
    expect(Number(fields[3])).not.toBe(process.pid);
    expect(Number(fields[3])).not.toBe(pid);
    expect(existsSync(path.join(dir, 'agent.sock'))).toBe(true);
  });

  it('answers hello with its version and pid', async () => {
    const c = await AgentClient.connect(unixConnector(path.join(dir, 'agent.sock')));
    expect(c.agentPid).toBe(await supervisorPid(dir));
    const st = await c.state();
    expect(st.status).toBe('empty');
    c.close();
  });

  it('refuses a hello without a common version, and closes', async () => {
    const got = await raw([encodeMessage({ v: 1, type: 'hello', versions: [7], kind: 'control' })]);
    expect(got).toEqual([expect.objectContaining({ type: 'error', code: 'ERR_VERSION' })]);
  });

  it('closes on a malformed frame: bad JSON, zero length, oversize, missing envelope', async () => {
    expect(await raw([frame('{not json')])).toEqual([expect.objectContaining({ type: 'error', code: 'ERR_PROTOCOL' })]);
    expect(await raw([Buffer.from([0, 0, 0, 0])])).toEqual([expect.objectContaining({ code: 'ERR_PROTOCOL' })]);
    expect(await raw([Buffer.from([0xff, 0, 0, 0])])).toEqual([expect.objectContaining({ code: 'ERR_PROTOCOL' })]);
    expect(await raw([frame('{"type":"hello"}')])).toEqual([expect.objectContaining({ code: 'ERR_PROTOCOL' })]);
    expect(await raw([frame('[1,2]')])).toEqual([expect.objectContaining({ code: 'ERR_PROTOCOL' })]);
  });

  it('refuses net-up/net-down/resolv-conf on the host: only the guest agent owns its network', async () => {
    const hello = encodeMessage({ v: 1, type: 'hello', versions: [1], kind: 'control' });
    const got = await raw([
      hello,
      frame('{"v":1,"type":"net-up","id":3,"ifname":"eth1","nic":"10.1.0.5/24,,02:42:0a:01:00:05"}'),
      frame('{"v":1,"type":"net-down","id":4,"ifname":"eth1"}'),
      frame('{"v":1,"type":"resolv-conf","id":6,"content":"nameserver 10.1.0.1\\n"}'),
      // an unknown type closes the connection, which ends the read
      frame('{"v":1,"type":"frobnicate","id":5}'),
    ]);
    expect(got).toEqual([
      expect.objectContaining({ type: 'hello', version: 1 }),
      expect.objectContaining({ type: 'error', id: 3, code: 'ERR_STATE', message: expect.stringContaining('only the guest agent') }),
      expect.objectContaining({ type: 'error', id: 4, code: 'ERR_STATE' }),
      expect.objectContaining({ type: 'error', id: 6, code: 'ERR_STATE' }),
      expect.objectContaining({ type: 'error', id: 5, code: 'ERR_PROTOCOL' }),
    ]);
  });

  it('answers requests by id, out of order is fine, and refuses unknown types', async () => {
    const hello = encodeMessage({ v: 1, type: 'hello', versions: [1], kind: 'control' });
    const got = await raw([
      hello,
      frame('{"v":1,"type":"state","id":7}'),
      frame('{"v":1,"type":"start","id":8}'),
      frame('{"v":1,"type":"frobnicate","id":9}'),
    ]);
    expect(got).toEqual([
      expect.objectContaining({ type: 'hello', version: 1 }),
      expect.objectContaining({ type: 'ok', id: 7, status: 'empty' }),
      expect.objectContaining({ type: 'error', id: 8, code: 'ERR_STATE' }),
      expect.objectContaining({ type: 'error', id: 9, code: 'ERR_PROTOCOL' }),
    ]);
  });

  it('rejects a bad spec naming the field, and stays usable', async () => {
    const c = await AgentClient.connect(unixConnector(path.join(dir, 'agent.sock')));
    await expect(c.request('create', { spec: { id: 'x', bogus: 1 } })).rejects.toThrow('spec: unknown key "bogus"');
    await expect(c.request('create', {})).rejects.toThrow('spec is required');
    await expect(c.signal(9)).rejects.toThrow('no container created');
    expect((await c.state()).status).toBe('empty');
    c.close();
  });

  it('refuses stream connections to processes that do not exist', async () => {
    const got = await raw([encodeMessage({ v: 1, type: 'hello', versions: [1], kind: 'stream', stream: 'stdout', exec: 'nope' })]);
    expect(got).toEqual([expect.objectContaining({ code: 'ERR_NOT_FOUND' })]);
  });

  it('refuses a second supervisor for the same state dir', async () => {
    await expect(spawnSupervisor(AGENT, dir)).rejects.toThrow('already running');
  });
});
