/**
 * Integer flags (--pids-limit, --cpu-shares, --cpu-period, --cpu-quota, --oom-score-adj) are
 * refused by the CLI when they are not integers, with the docker CLI's words, instead of being
 * sent as JSON null (Number('abc') is NaN), which the daemon took for "unset": the option was
 * silently dropped and `tvm update` reported success.
 */
import { describe, it, expect } from 'vitest';
import { updateBody } from '../../../src/cli/commands/update.js';
import { securityHostConfig, type SecurityFlags } from '../../../src/cli/commands/run-security.js';
import { parseIntFlag } from '../../../src/cli/units.js';

const noFlags: SecurityFlags = {
  securityOpt: [],
  ulimit: [],
  sysctl: [],
  groupAdd: [],
  device: [],
  capAdd: [],
  capDrop: [],
  dns: [],
  dnsSearch: [],
  dnsOption: [],
  addHost: [],
};

describe('integer CLI flags', () => {
  it('parseIntFlag: integers (signed) pass, anything else is the docker CLI error', () => {
    expect(parseIntFlag('20', '--pids-limit')).toBe(20);
    expect(parseIntFlag('-1', '--pids-limit')).toBe(-1);
    expect(() => parseIntFlag('abc', '--pids-limit')).toThrow(
      'invalid argument "abc" for "--pids-limit" flag: strconv.ParseInt: parsing "abc": invalid syntax',
    );
    expect(() => parseIntFlag('1.5', '--cpu-shares')).toThrow('invalid argument "1.5" for "--cpu-shares" flag');
    expect(() => parseIntFlag('', '--cpu-quota')).toThrow('invalid argument "" for "--cpu-quota" flag');
  });

  it('tvm update refuses a non-integer instead of sending null', () => {
    expect(() => updateBody({ pidsLimit: 'abc' })).toThrow('"--pids-limit" flag');
    expect(() => updateBody({ cpuShares: 'x' })).toThrow('"--cpu-shares" flag');
    expect(() => updateBody({ cpuPeriod: '1e' })).toThrow('"--cpu-period" flag');
    expect(() => updateBody({ cpuQuota: 'q' })).toThrow('"--cpu-quota" flag');
    expect(updateBody({ cpuQuota: '-1', pidsLimit: '0' })).toEqual({ CpuQuota: -1, PidsLimit: 0 });
  });

  it('tvm run --oom-score-adj refuses a non-integer', () => {
    expect(() => securityHostConfig({ ...noFlags, oomScoreAdj: 'high' })).toThrow('"--oom-score-adj" flag');
    expect(securityHostConfig({ ...noFlags, oomScoreAdj: '-500' })).toEqual({ OomScoreAdj: -500 });
  });
});
