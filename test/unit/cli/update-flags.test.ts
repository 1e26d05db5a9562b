/** `tvm update` without any flag is refused as the docker CLI refuses it (no request is sent). */
import { describe, it, expect } from 'vitest';
import { requireUpdateFlags, updateBody } from '../../../src/cli/commands/update.js';

describe('tvm update flags', () => {
  it('refuses an update that changes nothing', () => {
    expect(() => requireUpdateFlags(updateBody({}))).toThrow('you must provide one or more flags when using this command');
    expect(() => requireUpdateFlags(updateBody({ pidsLimit: '10' }))).not.toThrow();
  });
});
