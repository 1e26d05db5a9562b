import { describe, expect, it } from 'vitest';
import { decodeProgram, runSeccomp, AUDIT_ARCH_X86_64, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO } from '../../../../src/runtime/bpf.js';
import { agentSpec } from '../../../../src/runtime/host/spec.js';
import { SYSCALLS_X86_64 } from '../../../../src/runtime/syscalls-x86_64.js';
import { containerSpec } from '../../../fixtures/spec.js';

const spec = containerSpec;

const verdict = (filter: string, name: string) =>
  runSeccomp(decodeProgram(Buffer.from(filter, 'base64')), { nr: SYSCALLS_X86_64[name]!, arch: AUDIT_ARCH_X86_64 });

describe('the agent spec carries the security and process options', () => {
  const cg = { version: 1 as const, root: '/sys/fs/cgroup', path: 'tvm/abc123' };

  it("default: Docker's profile compiled for the container's capabilities; no no_new_privs", () => {
    const a = agentSpec(spec(), '/lower', cg);
    expect(a.seccomp?.flags).toBe(0);
    expect(verdict(a.seccomp!.filter, 'mount')).toBe((SECCOMP_RET_ERRNO | 1) >>> 0);
    expect(a.noNewPrivileges).toBeUndefined();
    const admin = agentSpec(spec({ capAdd: ['CAP_SYS_ADMIN'] }), '/lower', cg);
    expect(verdict(admin.seccomp!.filter, 'mount')).toBe(SECCOMP_RET_ALLOW);
  });

  it('privileged and seccomp=unconfined: no filter; no-new-privileges and a custom profile pass through', () => {
    expect(agentSpec(spec({ privileged: true }), '/lower', cg).seccomp).toBeUndefined();
    expect(agentSpec(spec({ security: { seccomp: 'unconfined', noNewPrivileges: false } }), '/lower', cg).seccomp).toBeUndefined();
    const custom = agentSpec(
      spec({
        security: {
          seccomp: { profile: '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}' },
          noNewPrivileges: true,
        },
      }),
      '/lower',
      cg,
    );
    expect(custom.noNewPrivileges).toBe(true);
    expect(verdict(custom.seccomp!.filter, 'mkdir')).toBe((SECCOMP_RET_ERRNO | 1) >>> 0);
    expect(verdict(custom.seccomp!.filter, 'mount')).toBe(SECCOMP_RET_ALLOW);
  });

  it('process options become the agent keys', () => {
    const a = agentSpec(
      spec({
        processOptions: { init: true, shmSize: 1 << 20, ulimits: [{ name: 'nofile', soft: 1, hard: 2 }], domainname: 'example.org' },
      }),
      '/lower',
      cg,
    );
    expect(a).toMatchObject({
      init: true,
      shmSize: 1 << 20,
      ulimits: [{ name: 'nofile', soft: 1, hard: 2 }],
      sysctls: { 'kernel.domainname': 'example.org' },
    });
  });
});
