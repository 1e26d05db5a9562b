/**
 * `docker cp` into a running VM: the guest owns its disk, so the daemon cannot write it. The
 * user's tar is parsed here (the same name checks as the host isolation's extractTo) and sent to
 * the guest agent entry by entry over an `extract` connection (docs/agent-protocol.md), where a
 * helper in the container's mount namespace applies it.
 */
import path from 'node:path';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { extract as tarExtract, type Header } from 'tar-stream';
import { InvalidParameterError, NotFoundError } from '../../errors.js';
import { readFrame, type AgentClient } from '../../guest-agent/client.js';
import { AgentError, decodeReply, encodeMessage, PROTOCOL_VERSION, type ExtractEntry } from '../../guest-agent/protocol.js';

const KINDS: Partial<Record<NonNullable<Header['type']>, ExtractEntry['kind']>> = {
  file: 'file',
  'contiguous-file': 'file',
  directory: 'dir',
  symlink: 'symlink',
  link: 'link',
};

/** The entry's path relative to the destination; refuses a name that climbs out of it. */
export function entryPath(name: string): string {
  const rel = path.posix.normalize(name).replace(/^\/+/, '').replace(/\/+$/, '') || '.';
  if (rel === '..' || rel.startsWith('../')) throw new InvalidParameterError(`tar entry ${JSON.stringify(name)} escapes the destination`);
  return rel;
}

/** The frame header for one tar entry, or undefined for what cp does not create (devices, fifos). */
export function entryFrame(h: Partial<Header> & { name: string }): ExtractEntry | undefined {
  const kind = h.type ? KINDS[h.type] : 'file';
  if (!kind) return undefined;
  const e: ExtractEntry = {
    v: PROTOCOL_VERSION,
    type: 'entry',
    path: entryPath(h.name),
    kind,
    mode: (h.mode ?? (kind === 'dir' ? 0o755 : 0o644)) & 0o7777,
    uid: h.uid ?? 0,
    gid: h.gid ?? 0,
    size: kind === 'file' ? (h.size ?? 0) : 0,
  };
  if (h.mtime) e.mtime = Math.floor(h.mtime.getTime() / 1000);
  if (kind === 'symlink') e.linkname = h.linkname ?? '';
  if (kind === 'link') e.linkname = entryPath(h.linkname ?? '');
  return e;
}

/** The helper's one answer, once every entry was sent (or earlier, when it failed). */
async function agentAnswer(sock: Socket): Promise<void> {
  const { frame } = await readFrame(sock, () => new AgentError('ERR_PROTOCOL', 'the guest agent closed the copy without an answer'));
  const r = decodeReply(frame);
  if (r.type === 'error') throw AgentError.of(r);
}

export async function extractThroughAgent(client: AgentClient, dest: string, tar: Readable): Promise<void> {
  let sock: Socket;
  try {
    sock = await client.openExtract(dest);
  } catch (e) {
    tar.resume();
    if (e instanceof AgentError && e.agentCode === 'ERR_NOT_FOUND') throw new NotFoundError(`Could not find the file ${dest} in container`);
    if (e instanceof AgentError && e.agentCode === 'ERR_NOT_DIR')
      throw new InvalidParameterError(`extraction point ${dest} is not a directory`);
    throw e;
  }
  // an early answer is an error: it stops the sending below
  let failed: Error | undefined;
  // a write to a helper that has gone fails here too; the answer, read first, says why
  sock.on('error', (e) => (failed ??= e));
  const answer = agentAnswer(sock);
  const stopped = answer.then(
    () => undefined,
    (e: unknown) => {
      failed = e as Error;
    },
  );
  // a function, not an inline check: `failed` changes while send() awaits the drain
  const throwIfFailed = () => {
    if (failed !== undefined) throw failed;
  };
  const send = async (buf: Buffer) => {
    throwIfFailed();
    if (!sock.write(buf)) await Promise.race([new Promise((r) => sock.once('drain', r)), stopped]);
    throwIfFailed();
  };
  const ex = tarExtract();
  tar.on('error', (e) => ex.destroy(e));
  tar.pipe(ex);
  try {
    for await (const entry of ex) {
      const frame = entryFrame(entry.header);
      if (!frame) {
        entry.resume();
        continue;
      }
      await send(encodeMessage(frame));
      for await (const chunk of entry) await send(chunk as Buffer);
    }
    await send(encodeMessage({ v: PROTOCOL_VERSION, type: 'end' }));
    sock.end();
    await answer;
  } catch (e) {
    // the guest's own error, when it sent one, explains a failure better than the broken
    // pipe it caused here
    if (!(e instanceof InvalidParameterError)) await Promise.race([stopped, new Promise((r) => setTimeout(r, 200))]);
    // a destroyed parser unpipes itself; the rest of the body is read and dropped
    ex.destroy();
    tar.resume();
    sock.destroy();
    throw failed ?? e;
  } finally {
    sock.destroy();
  }
}
