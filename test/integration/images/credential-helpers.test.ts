/**
 * Docker credential helpers in front of a real htpasswd registry: a fake
 * `docker-credential-tvmtest` (a shell script this test writes to a temp dir put first on
 * PATH) keeps credentials in files, as docker-credential-pass would in its store.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, chmodSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startRegistry, type RunningRegistry } from '../../fixtures/registry.js';
import { busyboxImage, pushImage } from '../../fixtures/oci.js';
import { RegistryClient } from '../../../src/images/registry.js';
import { Store } from '../../../src/images/store.js';
import { getDockerCredentials, storeDockerCredentials } from '../../../src/images/docker-config.js';

const alice = { username: 'alice', password: 'pa ss:word' };

describe('docker credential helpers', () => {
  let reg: RunningRegistry;
  let dir: string;
  let bin: string;
  let keychain: string;
  let ref: string;
  let imageId: string;
  const savedPath = process.env.PATH;

  const log = () => (existsSync(path.join(dir, 'calls.log')) ? readFileSync(path.join(dir, 'calls.log'), 'utf8') : '');
  const config = (name: string, value: object) => {
    const p = path.join(dir, `${name}.json`);
    writeFileSync(p, JSON.stringify(value));
    return p;
  };
  const keep = (server: string, username: string, secret: string) =>
    writeFileSync(
      path.join(keychain, server.replace(/[^A-Za-z0-9]/g, '_')),
      JSON.stringify({ ServerURL: server, Username: username, Secret: secret }),
    );
  const store = (cfg: string, extra: object = {}) => new Store(mkdtempSync(path.join(dir, 'store-')), { dockerConfigPath: cfg, ...extra });

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'tvm-credhelper-'));
    bin = path.join(dir, 'bin');
    keychain = path.join(dir, 'keychain');
    for (const d of [bin, keychain]) rmSync(d, { recursive: true, force: true });
    await import('node:fs/promises').then((f) => Promise.all([f.mkdir(bin), f.mkdir(keychain)]));
    // get: server URL on stdin -> the stored JSON, or docker-credential-helpers' not-found answer
    // store: JSON on stdin -> a file named after its ServerURL
    const script = `#!/bin/sh
set -e
keychain=${JSON.stringify(keychain)}
input=$(cat)
printf '%s %s\\n' "$1" "$input" >> ${JSON.stringify(path.join(dir, 'calls.log'))}
case "$1" in
get)
  f="$keychain/$(printf '%s' "$input" | tr -c 'A-Za-z0-9' '_')"
  if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
store)
  server=$(printf '%s' "$input" | sed -n 's/.*"ServerURL":"\\([^"]*\\)".*/\\1/p')
  printf '%s' "$input" > "$keychain/$(printf '%s' "$server" | tr -c 'A-Za-z0-9' '_')" ;;
slow) sleep 5 ;;
*) echo "unknown action $1" >&2; exit 2 ;;
esac
`;
    writeFileSync(path.join(bin, 'docker-credential-tvmtest'), script);
    chmodSync(path.join(bin, 'docker-credential-tvmtest'), 0o755);
    writeFileSync(path.join(bin, 'docker-credential-broken'), '#!/bin/sh\necho "helper exploded" >&2\nexit 3\n');
    chmodSync(path.join(bin, 'docker-credential-broken'), 0o755);
    writeFileSync(path.join(bin, 'docker-credential-sleepy'), '#!/bin/sh\nexec sleep 30\n');
    chmodSync(path.join(bin, 'docker-credential-sleepy'), 0o755);
    process.env.PATH = `${bin}:${savedPath}`;

    reg = await startRegistry({ auth: { kind: 'htpasswd', users: [alice] } });
    const pusher = new RegistryClient(reg.host, { credentials: alice });
    const img = await busyboxImage();
    await pushImage(pusher, 'private/app', 'v1', img);
    await pusher.close();
    ref = `${reg.host}/private/app:v1`;
    imageId = img.config.digest;
  });
  afterAll(async () => {
    process.env.PATH = savedPath;
    await reg?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('credsStore: the helper is asked with the server on stdin and its answer is used', async () => {
    keep(reg.host, alice.username, alice.password);
    const before = log();
    expect((await store(config('store', { credsStore: 'tvmtest' })).pull(ref)).id).toBe(imageId);
    expect(log().slice(before.length)).toBe(`get ${reg.host}\n`);
  });

  it('lookup order: credHelpers[host] before credsStore before auths', async () => {
    keep(reg.host, alice.username, alice.password);
    const wrongAuths = { [reg.host]: { auth: Buffer.from('alice:wrong').toString('base64') } };
    // credHelpers wins over a credsStore that does not even exist and over wrong auths
    const cfg = config('order', { credsStore: 'nosuch', credHelpers: { [reg.host]: 'tvmtest' }, auths: wrongAuths });
    expect((await store(cfg).pull(ref)).id).toBe(imageId);
    // credsStore wins over auths
    expect((await store(config('order2', { credsStore: 'tvmtest', auths: wrongAuths })).pull(ref)).id).toBe(imageId);
    // only auths: its wrong password reaches the registry
    await expect(store(config('order3', { auths: wrongAuths })).pull(ref)).rejects.toThrow('unauthorized: authentication required');
  });

  it("a helper that is not installed, fails or hangs: the docker CLI's words, naming the helper", async () => {
    await expect(store(config('missing', { credsStore: 'nosuch' })).pull(ref)).rejects.toMatchObject({
      message: 'error getting credentials - err: exec: "docker-credential-nosuch": executable file not found in $PATH, out: ``',
      code: 'ERR_CREDENTIAL_HELPER',
    });
    await expect(store(config('broken', { credHelpers: { [reg.host]: 'broken' } })).pull(ref)).rejects.toThrow(
      'error getting credentials - err: exit status 3, out: `helper exploded`',
    );
    await expect(
      getDockerCredentials(reg.host, { configPath: config('sleepy', { credsStore: 'sleepy' }), timeoutMs: 300 }),
    ).rejects.toThrow(/error getting credentials - err: docker-credential-sleepy timed out after 300 ms/);
  });

  it('a helper answer that is not JSON is refused without repeating it (it may hold the secret)', async () => {
    const helper = path.join(bin, 'docker-credential-chatty');
    writeFileSync(helper, "#!/bin/sh\ncat >/dev/null\nprintf 'Username: alice\\nSecret: hunter2-do-not-print\\n'\n");
    chmodSync(helper, 0o755);
    const err = await getDockerCredentials(reg.host, { configPath: config('chatty', { credsStore: 'chatty' }) }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/error getting credentials - err: docker-credential-chatty answered something that is not JSON/);
    expect((err as Error).message).not.toContain('hunter2');
  });

  it("the helper's not-found answer means anonymous", async () => {
    rmSync(keychain, { recursive: true, force: true });
    await import('node:fs/promises').then((f) => f.mkdir(keychain));
    expect(await getDockerCredentials(reg.host, { configPath: config('nf', { credsStore: 'tvmtest' }) })).toBeUndefined();
    await expect(store(config('nf2', { credsStore: 'tvmtest' })).pull(ref)).rejects.toThrow(/no basic auth credentials$/);
  });

  it('identity tokens (Username <token>) and Docker Hub under its index URL', async () => {
    keep('https://index.docker.io/v1/', '<token>', 'refresh-me');
    const before = log();
    expect(await getDockerCredentials('docker.io', { configPath: config('hub', { credsStore: 'tvmtest' }) })).toEqual({
      identitytoken: 'refresh-me',
    });
    expect(log().slice(before.length)).toBe('get https://index.docker.io/v1/\n');
  });

  it('login saves where docker login would: through the helper, or base64 in auths', async () => {
    const viaHelper = config('login-helper', { credsStore: 'tvmtest', auths: {}, currentContext: 'default' });
    rmSync(keychain, { recursive: true, force: true });
    await import('node:fs/promises').then((f) => f.mkdir(keychain));
    await store(viaHelper, { saveLogins: true }).login(`http://${reg.host}/`, alice);
    expect(log()).toContain(`store {"ServerURL":"${reg.host}","Username":"alice","Secret":"pa ss:word"}`);
    const saved = JSON.parse(readFileSync(viaHelper, 'utf8'));
    expect(saved).toEqual({ credsStore: 'tvmtest', auths: { [reg.host]: {} }, currentContext: 'default' });
    expect((await store(viaHelper).pull(ref)).id).toBe(imageId);

    const plain = path.join(dir, 'fresh', 'config.json');
    await store(plain, { saveLogins: true }).login(reg.host, alice);
    expect(JSON.parse(readFileSync(plain, 'utf8'))).toEqual({
      auths: { [reg.host]: { auth: Buffer.from('alice:pa ss:word').toString('base64') } },
    });
    expect(((await import('node:fs')).statSync(plain).mode & 0o777).toString(8)).toBe('600');
    expect((await store(plain).pull(ref)).id).toBe(imageId);

    // without saveLogins, like Docker's daemon, login keeps nothing
    const untouched = config('untouched', {});
    await store(untouched).login(reg.host, alice);
    expect(JSON.parse(readFileSync(untouched, 'utf8'))).toEqual({});
    await expect(storeDockerCredentials(reg.host, alice, { configPath: config('bad-helper', { credsStore: 'nosuch' }) })).rejects.toThrow(
      'error storing credentials - err: exec: "docker-credential-nosuch": executable file not found in $PATH',
    );
  });
});
