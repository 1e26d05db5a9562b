import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startRegistry, type RunningRegistry } from '../../fixtures/registry.js';
import { busyboxImage, pushImage } from '../../fixtures/oci.js';
import { RegistryClient } from '../../../src/images/registry.js';
import { Store } from '../../../src/images/store.js';
import { AuthError } from '../../../src/images/auth.js';

const users = [{ username: 'alice', password: 's3cret:with:colons' }];
const cleanup: (() => Promise<void> | void)[] = [];

function tmp(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'tvm-auth-'));
  cleanup.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function dockerConfig(host: string, user: string, password: string): string {
  const p = path.join(tmp(), 'config.json');
  writeFileSync(p, JSON.stringify({ auths: { [`https://${host}`]: { auth: Buffer.from(`${user}:${password}`).toString('base64') } } }));
  return p;
}

afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

async function seed(reg: RunningRegistry): Promise<string> {
  const pusher = new RegistryClient(reg.host, { credentials: users[0]! });
  const img = await busyboxImage();
  await pushImage(pusher, 'private/app', 'v1', img);
  await pusher.close();
  return img.config.digest;
}

describe('registry auth', () => {
  it('htpasswd (basic): refuses anonymous and wrong passwords, accepts given and config.json credentials', async () => {
    const reg = await startRegistry({ auth: { kind: 'htpasswd', users } });
    cleanup.push(() => reg.stop());
    const id = await seed(reg);
    const ref = `${reg.host}/private/app:v1`;
    const empty = path.join(tmp(), 'none.json');

    const anon = new Store(tmp(), { dockerConfigPath: empty });
    const e1 = await anon.pull(ref).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(AuthError);
    // Docker's words and status (errdefs.Unknown) for a pull without the credentials basic auth needs
    expect((e1 as AuthError).message).toBe(`Head "http://${reg.host}/v2/private/app/manifests/v1": no basic auth credentials`);
    expect((e1 as AuthError).status).toBe(500);

    const wrong = new Store(tmp(), { dockerConfigPath: empty });
    const e2 = await wrong.pull(ref, { auth: { username: 'alice', password: 'nope' } }).catch((e: unknown) => e);
    expect([(e2 as Error).message, (e2 as AuthError).status]).toEqual(['unauthorized: authentication required', 500]);
    await expect(wrong.login(reg.host, { username: 'alice', password: 'nope' })).rejects.toMatchObject({
      message: `login attempt to http://${reg.host}/v2/ failed with status: 401 Unauthorized`,
      status: 401,
    });

    const given = new Store(tmp(), { dockerConfigPath: empty });
    expect((await given.pull(ref, { auth: users[0]! })).id).toBe(id);

    const fromConfig = new Store(tmp(), { dockerConfigPath: dockerConfig(reg.host, users[0]!.username, users[0]!.password) });
    expect((await fromConfig.pull(ref)).id).toBe(id);
  });

  it('token auth: anonymous pull where allowed, push needs credentials, tokens cached per scope', async () => {
    const reg = await startRegistry({ auth: { kind: 'token', users, allowAnonymousPull: true } });
    cleanup.push(() => reg.stop());
    const id = await seed(reg);
    const ref = `${reg.host}/private/app:v1`;
    const empty = path.join(tmp(), 'none.json');

    const anon = new Store(tmp(), { dockerConfigPath: empty });
    const before = reg.tokensIssued();
    expect((await anon.pull(ref)).id).toBe(id);
    // one token for repository:private/app:pull serves the manifest, config and layer requests
    expect(reg.tokensIssued() - before).toBe(1);

    await anon.tag(ref, `${reg.host}/private/copy:v1`);
    const denied = await anon.push(`${reg.host}/private/copy:v1`).catch((e: unknown) => e);
    expect((denied as Error).message).toMatch(/denied: requested access to the resource is denied/);

    // the token server's {"details": ...} as Docker words it, behind the request it failed
    await expect(anon.pull(ref, { auth: { username: 'alice', password: 'wrong' } })).rejects.toMatchObject({
      message: `Head "http://${reg.host}/v2/private/app/manifests/v1": unauthorized: incorrect username or password`,
      status: 500,
    });

    const authed = new Store(tmp(), { dockerConfigPath: dockerConfig(reg.host, users[0]!.username, users[0]!.password) });
    await authed.pull(ref);
    await authed.tag(ref, `${reg.host}/private/copy:v1`);
    const beforePush = reg.tokensIssued();
    const digest = await authed.push(`${reg.host}/private/copy:v1`);
    // HEADs, upload sessions, PUTs and the manifest all share one pull,push token
    expect(reg.tokensIssued() - beforePush).toBe(1);
    expect(digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect((await anon.pull(`${reg.host}/private/copy:v1`)).id).toBe(id);
  });

  it("token auth without anonymous access: Docker's pull access denied, 404", async () => {
    const reg = await startRegistry({ auth: { kind: 'token', users } });
    cleanup.push(() => reg.stop());
    await seed(reg);
    const anon = new Store(tmp(), { dockerConfigPath: path.join(tmp(), 'none.json') });
    await expect(anon.pull(`${reg.host}/private/app:v1`)).rejects.toMatchObject({
      message: `pull access denied for ${reg.host}/private/app, repository does not exist or may require 'docker login': denied: requested access to the resource is denied`,
      status: 404,
    });
  });
});
