import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  configKey,
  helperFor,
  readDockerConfig,
  getDockerCredentials,
  DOCKER_HUB_INDEX_SERVER,
} from '../../../src/images/docker-config.js';

describe('docker config lookup', () => {
  it('files Docker Hub under its index URL, other registries under host[:port]', () => {
    expect(configKey('docker.io')).toBe(DOCKER_HUB_INDEX_SERVER);
    expect(configKey('reg.example:5000')).toBe('reg.example:5000');
  });

  it('picks credHelpers[registry] (keys may carry a scheme) before credsStore', () => {
    const cfg = { credsStore: 'desktop', credHelpers: { 'https://gcr.io': 'gcloud', [DOCKER_HUB_INDEX_SERVER]: 'hub' } };
    expect(helperFor(cfg, 'gcr.io')).toBe('gcloud');
    expect(helperFor(cfg, 'docker.io')).toBe('hub');
    expect(helperFor(cfg, 'quay.io')).toBe('desktop');
    expect(helperFor({}, 'quay.io')).toBeUndefined();
  });

  it('reads auths (base64, plain fields, identity tokens); refuses broken files clearly', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tvm-dockercfg-'));
    try {
      const file = path.join(dir, 'config.json');
      writeFileSync(
        file,
        JSON.stringify({
          auths: {
            'https://index.docker.io/v1/': { auth: Buffer.from('hub:pw:with:colons').toString('base64') },
            'reg.example:5000': { identitytoken: 'tok' },
            'bad.example': { auth: Buffer.from('nocolon').toString('base64') },
          },
        }),
      );
      expect(await getDockerCredentials('docker.io', { configPath: file })).toEqual({ username: 'hub', password: 'pw:with:colons' });
      expect(await getDockerCredentials('reg.example:5000', { configPath: file })).toEqual({ identitytoken: 'tok' });
      expect(await getDockerCredentials('other.example', { configPath: file })).toBeUndefined();
      await expect(getDockerCredentials('bad.example', { configPath: file })).rejects.toThrow(
        /auths\.bad\.example\.auth is not base64 "user:password"/,
      );
      expect(await readDockerConfig(path.join(dir, 'absent.json'))).toEqual({});
      writeFileSync(file, '{"auths":');
      await expect(readDockerConfig(file)).rejects.toMatchObject({ code: 'ERR_BAD_DOCKER_CONFIG' });
      writeFileSync(file, '[]');
      await expect(readDockerConfig(file)).rejects.toThrow(/not valid JSON: not an object/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
