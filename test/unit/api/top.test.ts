import { describe, it, expect } from 'vitest';
import { parsePsOutput, validatePsArgs } from '../../../src/api/top.js';

describe('docker top ps parsing (issue 16 item 15)', () => {
  it('keeps the container rows with the columns ps printed', () => {
    const out = 'UID   PID  PPID C CMD\nroot    1     0 0 /sbin/init\nroot   42     1 0 sleep 1000 --x\nroot   43    42 0 sh -c x\n';
    expect(parsePsOutput(out, new Set([42]))).toEqual({
      Titles: ['UID', 'PID', 'PPID', 'C', 'CMD'],
      Processes: [['root', '42', '1', '0', 'sleep 1000 --x']],
    });
    expect(parsePsOutput('  PID COMMAND\n   42 sleep\n   -  thread\n    7 x\n', new Set([42]))).toEqual({
      Titles: ['PID', 'COMMAND'],
      Processes: [
        ['42', 'sleep'],
        ['-', 'thread'],
      ],
    });
    expect(() => parsePsOutput('COMMAND\nx\n', new Set([1]))).toThrow("Couldn't find PID field in ps output");
  });
  it('refuses a column renamed to PID', () => {
    expect(() => validatePsArgs('-o pid,comm')).not.toThrow();
    expect(() => validatePsArgs('-o user= PID')).toThrow('specifying "user=PID" is not allowed');
    expect(() => validatePsArgs('-o pid -o ppid=PID')).toThrow('specifying "ppid=PID" is not allowed');
  });
});
