import { describe, it, expect } from 'vitest';
import { RegistryClient, isLoopbackHost, DOCKER_HUB_REGISTRY_HOST } from '../../../src/images/registry.js';

describe('registry endpoints', () => {
  it('treats only loopback hosts as plain HTTP by default', () => {
    for (const h of ['localhost', 'localhost:5000', '127.0.0.1', '127.0.0.1:5000', '127.1.2.3:80', '[::1]:5000'])
      expect(isLoopbackHost(h)).toBe(true);
    for (const h of ['registry.example', '10.0.0.1:5000', '128.0.0.1', 'localhost.evil.com', '[::2]:5000'])
      expect(isLoopbackHost(h)).toBe(false);
  });
  it('chooses scheme and host', async () => {
    const cases: [string, string[] | undefined, string][] = [
      ['docker.io', undefined, `https://${DOCKER_HUB_REGISTRY_HOST}`],
      ['127.0.0.1:5000', undefined, 'http://127.0.0.1:5000'],
      ['reg.example:5000', undefined, 'https://reg.example:5000'],
      ['reg.example:5000', ['reg.example:5000'], 'http://reg.example:5000'],
    ];
    for (const [domain, insecure, url] of cases) {
      const c = new RegistryClient(domain, { ...(insecure && { insecureRegistries: insecure }), credentials: {} });
      expect(c.baseUrl).toBe(url);
      await c.close();
    }
  });
  it('scopes', () => {
    expect(RegistryClient.scope('library/alpine', 'pull')).toBe('repository:library/alpine:pull');
  });
});
