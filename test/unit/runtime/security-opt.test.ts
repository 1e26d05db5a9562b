import { describe, expect, it } from 'vitest';
import { InvalidParameterError } from '../../../src/errors.js';
import { parseSecurityOpt } from '../../../src/runtime/security-opt.js';

describe('--security-opt', () => {
  it("Docker's defaults: default seccomp profile, no_new_privs off", () => {
    expect(parseSecurityOpt(undefined)).toEqual({ seccomp: 'default', noNewPrivileges: false });
    expect(parseSecurityOpt([])).toEqual({ seccomp: 'default', noNewPrivileges: false });
  });
  it.each([
    [['no-new-privileges'], { noNewPrivileges: true }],
    [['no-new-privileges=true'], { noNewPrivileges: true }],
    [['no-new-privileges:true'], { noNewPrivileges: true }],
    [['no-new-privileges=1'], { noNewPrivileges: true }],
    [['no-new-privileges', 'no-new-privileges=false'], { noNewPrivileges: false }],
    [['seccomp=unconfined'], { seccomp: 'unconfined' }],
    [['seccomp:unconfined'], { seccomp: 'unconfined' }],
    [['seccomp=builtin'], { seccomp: 'default' }],
    [['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}'], { seccomp: { profile: '{"defaultAction":"SCMP_ACT_ALLOW"}' } }],
    [['apparmor=unconfined', 'label=disable', 'label:disable', 'disable', 'writable-cgroups=false'], {}],
  ])('%j', (opts, want) => {
    expect(parseSecurityOpt(opts)).toEqual({ seccomp: 'default', noNewPrivileges: false, ...want });
  });
  it.each([
    ['x', 'invalid --security-opt 1: "x"'],
    ['foo=bar', 'invalid --security-opt 2: "foo=bar"'],
    ['no-new-privileges=maybe', 'invalid --security-opt 2: "no-new-privileges=maybe"'],
    ['apparmor=docker-default', 'AppArmor is not enabled on this host'],
    ['label=type:svirt_t', 'SELinux is not enabled on this host'],
    ['writable-cgroups=true', 'writable-cgroups=true is not supported'],
    ['seccomp={"syscalls":[]}', 'invalid seccomp profile: defaultAction: required'],
  ])('refuses %s', (opt, msg) => {
    expect(() => parseSecurityOpt([opt])).toThrow(InvalidParameterError);
    expect(() => parseSecurityOpt([opt])).toThrow(msg);
  });
});
