/**
 * The host supervisor process (`tvm-agent supervise`): spawning it, finding it again after a
 * daemon restart, connecting to it. It daemonizes itself; `supervise` returns once the socket
 * is listening, so no polling is needed.
 */
import { execFile } from 'node:child_process';
import { readFile, symlink, mkdir, unlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { TvmError } from '../../errors.js';
import { processAlive } from '../../process-alive.js';
import { AgentClient, unixConnector } from '../../guest-agent/client.js';

/** sun_path holds 108 bytes including the NUL. */
const SUN_PATH_MAX = 107;

export function socketPath(stateDir: string): string {
  return path.join(stateDir, 'agent.sock');
}

export function spawnSupervisor(agentPath: string, stateDir: string, lingerSeconds?: number): Promise<void> {
  const args = ['supervise', '--state-dir', stateDir];
  if (lingerSeconds !== undefined) args.push('--linger', String(lingerSeconds));
  return new Promise((resolve, reject) => {
    execFile(agentPath, args, { timeout: 30_000 }, (err, _stdout, stderr) => {
      if (err) {
        const detail = (stderr || err.message).trim();
        reject(new TvmError('ERR_SUPERVISOR_START', `cannot start the supervisor for ${stateDir}: ${detail}`, 500, { cause: err }));
      } else resolve();
    });
  });
}

/** The supervisor's pid if its pid file names a live process. */
export async function supervisorPid(stateDir: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(stateDir, 'agent.pid'), 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number.parseInt(text.trim(), 10);
  // not kill(pid, 0): a SIGKILLed supervisor nobody reaped yet passes that as a zombie
  if (!(await processAlive(pid))) return undefined;
  // a recycled pid is not our supervisor: it must be a tvm-agent
  try {
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmd.includes('supervise')) return undefined;
  } catch {
    return undefined;
  }
  return pid;
}

/**
 * Connects to the supervisor. A socket path too long for sun_path is reached through a short
 * symlink under runRoot/sock.
 */
export async function connectSupervisor(stateDir: string, runRoot: string): Promise<AgentClient> {
  let sock = socketPath(stateDir);
  if (Buffer.byteLength(sock) > SUN_PATH_MAX) {
    const dir = path.join(runRoot, 'sock');
    await mkdir(dir, { recursive: true });
    const link = path.join(dir, createHash('sha256').update(stateDir).digest('hex').slice(0, 16));
    if (Buffer.byteLength(link) > SUN_PATH_MAX) {
      throw new TvmError('ERR_SOCKET_PATH', `runRoot ${runRoot} is too long for a unix socket path`);
    }
    if (!existsSync(link)) {
      // a dangling link from an earlier run, if any: symlink() below fails loudly if it is still in the way
      await unlink(link).catch(() => {});
      await symlink(sock, link);
    }
    sock = link;
  }
  return AgentClient.connect(unixConnector(sock));
}
