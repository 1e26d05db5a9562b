/**
 * The container-create options of Docker's HostConfig that are about the workload's security
 * and process environment: parsed and validated with Docker's rules before anything is created.
 */
import type { CreateBody } from './container-config.js';
import { validateProcessOptions } from './process-options.js';
import { parseSecurityOpt } from './security-opt.js';
import type { ProcessOptions, SecuritySpec } from './types.js';

export interface HostOptions {
  security?: SecuritySpec;
  processOptions?: ProcessOptions;
}

export function validateHostOptions(body: CreateBody, network: 'none' | 'host'): HostOptions {
  const hc = body.HostConfig ?? {};
  const out: HostOptions = {};
  const security = parseSecurityOpt(hc.SecurityOpt as string[] | null | undefined);
  if (security.seccomp !== 'default' || security.noNewPrivileges) out.security = security;
  const processOptions = validateProcessOptions(hc, network);
  if (Object.keys(processOptions).length > 0) out.processOptions = processOptions;
  return out;
}
