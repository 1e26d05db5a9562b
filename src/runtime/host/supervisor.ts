/**
 * The host supervisor process (`tvm-agent supervise`): spawning it, finding it again after a
 * daemon restart, connecting to it. It daemonizes itself; `supervise` returns once the socket
 * is listening, so no polling is needed.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { TvmError } from '../../errors.js';
import { processAlive } from '../../process-alive.js';
import { AgentClient, unixConnector } from '../../guest-agent/client.js';
import { reachableSocketPath } from '../socket-path.js';

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
  return AgentClient.connect(unixConnector(await reachableSocketPath(socketPath(stateDir), runRoot)));
}
