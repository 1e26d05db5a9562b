/**
 * Docker's `--security-opt` list (HostConfig.SecurityOpt), parsed with Docker's rules and
 * messages (moby daemon parseSecurityOpt). The docker CLI has already replaced
 * `seccomp=<file>` by `seccomp=<the file's JSON>`.
 */
import { InvalidParameterError } from '../errors.js';
import { parseProfile } from './seccomp-profile.js';
import type { SecuritySpec } from './types.js';

function parseBool(v: string): boolean | undefined {
  // Go's strconv.ParseBool
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

export function parseSecurityOpt(opts: readonly string[] | null | undefined): SecuritySpec {
  const out: SecuritySpec = { seccomp: 'default', noNewPrivileges: false };
  for (const opt of opts ?? []) {
    if (opt === 'no-new-privileges') {
      out.noNewPrivileges = true;
      continue;
    }
    if (opt === 'disable') {
      // the old spelling of label=disable: SELinux labels are not in use here
      continue;
    }
    const sep = opt.includes('=') ? '=' : opt.includes(':') ? ':' : '';
    if (sep === '') throw new InvalidParameterError(`invalid --security-opt 1: "${opt}"`);
    const at = opt.indexOf(sep);
    const k = opt.slice(0, at);
    const v = opt.slice(at + 1);
    switch (k) {
      case 'seccomp':
        if (v === 'unconfined') out.seccomp = 'unconfined';
        else if (v === 'builtin' || v === '') out.seccomp = 'default';
        else {
          parseProfile(v);
          out.seccomp = { profile: v };
        }
        break;
      case 'no-new-privileges': {
        const b = parseBool(v);
        if (b === undefined) throw new InvalidParameterError(`invalid --security-opt 2: "${opt}"`);
        out.noNewPrivileges = b;
        break;
      }
      case 'apparmor':
        // AppArmor is not enabled on the hosts tvm runs on: only "no profile" can be honoured
        if (v !== 'unconfined') {
          throw new InvalidParameterError(
            `--security-opt apparmor=${v}: AppArmor is not enabled on this host (only apparmor=unconfined is accepted)`,
          );
        }
        break;
      case 'label':
        if (v !== 'disable') {
          throw new InvalidParameterError(
            `--security-opt label=${v}: SELinux is not enabled on this host (only label=disable is accepted)`,
          );
        }
        break;
      case 'writable-cgroups': {
        const b = parseBool(v);
        if (b === undefined) throw new InvalidParameterError(`invalid --security-opt 2: "${opt}"`);
        if (b) throw new InvalidParameterError('--security-opt writable-cgroups=true is not supported by tvm');
        break;
      }
      default:
        throw new InvalidParameterError(`invalid --security-opt 2: "${opt}"`);
    }
  }
  return out;
}
