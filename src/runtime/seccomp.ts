/**
 * The seccomp filter a container gets, as the agent installs it: Docker's default profile or
 * the user's, resolved for the container's capabilities and compiled to BPF here (the agent
 * installs the program verbatim). `--privileged` and `seccomp=unconfined` get none.
 */
import { encodeProgram } from './bpf.js';
import { compileSeccomp } from './seccomp-compile.js';
import { DEFAULT_PROFILE } from './seccomp-default.js';
import { parseProfile, resolveProfile, type ProfileJson } from './seccomp-profile.js';
import type { ContainerSpec, SecuritySpec } from './types.js';

/** Docker's default capability set (moby oci/caps DefaultCapabilities). */
export const DOCKER_DEFAULT_CAPS = [
  'CHOWN',
  'DAC_OVERRIDE',
  'FSETID',
  'FOWNER',
  'MKNOD',
  'NET_RAW',
  'SETGID',
  'SETUID',
  'SETFCAP',
  'SETPCAP',
  'NET_BIND_SERVICE',
  'SYS_CHROOT',
  'KILL',
  'AUDIT_WRITE',
] as const;

const norm = (c: string) => c.toUpperCase().replace(/^CAP_/, '');

/**
 * The capabilities a container holds, with the agent's rules (native/agent/caps.c): privileged
 * or add ALL: everything (minus drops); drop ALL: only the adds; else defaults + adds - drops.
 */
export function effectiveCaps(
  capAdd: readonly string[],
  capDrop: readonly string[],
  privileged: boolean,
  all: readonly string[],
): Set<string> {
  const add = capAdd.map(norm);
  const drop = capDrop.map(norm);
  const named = (v: string[]) => v.filter((c) => c !== 'ALL');
  if (privileged) return new Set(all);
  if (add.includes('ALL')) return new Set(all.filter((c) => !drop.includes(c)));
  if (drop.includes('ALL')) return new Set(named(add));
  // moby's TweakCapabilities: drop from the defaults first, then add (add X + drop X keeps X)
  return new Set([...DOCKER_DEFAULT_CAPS.filter((c) => !drop.includes(c)), ...named(add)]);
}

export interface AgentSeccomp {
  /** base64 of the struct sock_filter array */
  filter: string;
  /** SECCOMP_FILTER_FLAG_* */
  flags: number;
}

export function profileOf(security: SecuritySpec | undefined): ProfileJson | undefined {
  const s = security?.seccomp ?? 'default';
  if (s === 'unconfined') return undefined;
  return s === 'default' ? DEFAULT_PROFILE : parseProfile(s.profile);
}

/** The filter for a container, or undefined when it runs unconfined. */
export function containerSeccomp(
  security: SecuritySpec | undefined,
  caps: ReadonlySet<string>,
  privileged: boolean,
): AgentSeccomp | undefined {
  if (privileged) return undefined;
  const profile = profileOf(security);
  if (!profile) return undefined;
  const resolved = resolveProfile(profile, { caps });
  return { filter: encodeProgram(compileSeccomp(resolved)).toString('base64'), flags: resolved.flags };
}

/** The agent spec's security fields for a container. */
export function agentSecurity(
  spec: Pick<ContainerSpec, 'security' | 'capAdd' | 'capDrop' | 'privileged'>,
  allCaps: readonly string[],
): { seccomp?: AgentSeccomp; noNewPrivileges?: boolean } {
  const caps = effectiveCaps(spec.capAdd, spec.capDrop, spec.privileged, allCaps);
  const seccomp = containerSeccomp(spec.security, caps, spec.privileged);
  return { ...(seccomp && { seccomp }), ...(spec.security?.noNewPrivileges && { noNewPrivileges: true }) };
}
