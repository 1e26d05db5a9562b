/**
 * `tvm daemon -H tcp://... --tlsverify`: mutual TLS with certificates made by openssl; the real
 * docker CLI with --tlsverify gets through, a client without a certificate does not.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import https from 'node:https';
import { execa } from 'execa';
import { startDaemon, type RunningDaemon } from '../../../src/daemon/daemon.js';
import { MemoryIsolation } from '../../fixtures/fake-isolation.js';
import { FakeImageStore } from '../../fixtures/fake-images.js';
import { requireDocker } from '../../fixtures/daemon.js';

describe('daemon over TCP with mutual TLS', () => {
  let dir: string;
  let d: RunningDaemon;
  let port: number;

  beforeAll(async () => {
    requireDocker();
    dir = await mkdtemp(path.join(os.tmpdir(), 'tvm-tls-'));
    const ssl = (args: string[]) => execa('openssl', args, { cwd: dir });
    await ssl([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca-key.pem',
      '-out',
      'ca.pem',
      '-days',
      '1',
      '-subj',
      '/CN=tvm test CA',
    ]);
    for (const who of ['server', 'client']) {
      await ssl([
        'req',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        `${who}-key.pem`,
        '-out',
        `${who}.csr`,
        '-subj',
        `/CN=${who === 'server' ? 'localhost' : 'tvm client'}`,
      ]);
      const ext = path.join(dir, `${who}.ext`);
      await execa('sh', [
        '-c',
        `printf '%s\\n' "${who === 'server' ? 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth' : 'extendedKeyUsage=clientAuth'}" > ${ext}`,
      ]);
      await ssl([
        'x509',
        '-req',
        '-in',
        `${who}.csr`,
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca-key.pem',
        '-CAcreateserial',
        '-out',
        `${who}-cert.pem`,
        '-days',
        '1',
        '-extfile',
        ext,
      ]);
    }
    const images = new FakeImageStore();
    d = await startDaemon({
      hosts: ['tcp://127.0.0.1:0'],
      dataRoot: path.join(dir, 'data'),
      execRoot: path.join(dir, 'run'),
      defaultIsolation: 'container',
      tls: { verify: true, ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'server-cert.pem'), key: path.join(dir, 'server-key.pem') },
      components: { images, isolations: { container: new MemoryIsolation() } },
      log: () => {},
    });
    port = Number(d.addresses[0]!.split(':').pop());
  });
  afterAll(async () => {
    await d?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('lets the docker CLI in with a client certificate', async () => {
    const r = await execa(
      'docker',
      [
        '--tlsverify',
        `--tlscacert=${dir}/ca.pem`,
        `--tlscert=${dir}/client-cert.pem`,
        `--tlskey=${dir}/client-key.pem`,
        '-H',
        `tcp://127.0.0.1:${port}`,
        'version',
        '--format',
        '{{.Server.Version}}',
      ],
      {
        reject: false,
        env: { DOCKER_CONFIG: path.join(dir, 'cfg') },
      },
    );
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(String(r.stdout)).toBe('0.1.0');
  });

  it('refuses a client without a certificate', async () => {
    const err = await new Promise<Error | undefined>((resolve) => {
      const req = https.get({ host: '127.0.0.1', port, path: '/_ping', ca: undefined, rejectUnauthorized: false }, (res) => {
        res.resume();
        resolve(undefined);
      });
      req.on('error', (e) => resolve(e));
    });
    expect(err).toBeInstanceOf(Error);
  });
});
