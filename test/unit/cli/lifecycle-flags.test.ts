import { describe, it, expect } from 'vitest';
import { parseRestartFlag } from '../../../src/cli/commands/restart.js';
import { updateBody } from '../../../src/cli/commands/update.js';

describe('tvm run --restart / tvm update flags', () => {
  it('parses --restart as the docker CLI does', () => {
    expect(parseRestartFlag('always')).toEqual({ Name: 'always', MaximumRetryCount: 0 });
    expect(parseRestartFlag('on-failure:3')).toEqual({ Name: 'on-failure', MaximumRetryCount: 3 });
    expect(parseRestartFlag('on-failure')).toEqual({ Name: 'on-failure', MaximumRetryCount: 0 });
    expect(() => parseRestartFlag(':3')).toThrow('invalid restart policy format: no policy provided before colon');
    expect(() => parseRestartFlag('on-failure:x')).toThrow('invalid restart policy format: maximum retry count must be an integer');
  });
  it('builds the UpdateConfig body from the flags given (only those)', () => {
    expect(updateBody({ memory: '32m', memorySwap: '-1', pidsLimit: '20' })).toEqual({
      Memory: 32 * 1024 * 1024,
      MemorySwap: -1,
      PidsLimit: 20,
    });
    expect(updateBody({ cpus: '0.5', restart: 'unless-stopped' })).toEqual({
      NanoCpus: 500_000_000,
      RestartPolicy: { Name: 'unless-stopped', MaximumRetryCount: 0 },
    });
    expect(updateBody({})).toEqual({});
  });
});
