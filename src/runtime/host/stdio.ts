/**
 * Wiring agent stream connections to the caller's stdio: output with backpressure (a slow
 * caller pauses the socket; the agent buffers and, past its limit, drops the reader rather
 * than stall the workload), stdin with end-of-input forwarded.
 */
import type { Duplex, Writable } from 'node:stream';
import type { AgentClient } from '../../guest-agent/client.js';
import type { Attachment, StdioStreams } from '../types.js';

function pump(src: Duplex, dst: Writable): Promise<void> {
  return new Promise((resolve) => {
    const onDrain = () => src.resume();
    src.on('data', (d: Buffer) => {
      if (!dst.write(d)) {
        src.pause();
        dst.once('drain', onDrain);
      }
    });
    const done = () => {
      dst.off('drain', onDrain);
      resolve();
    };
    src.once('end', done);
    src.once('close', done);
    src.once('error', done);
    src.resume();
  });
}

/** Opens the streams of the main process (exec undefined) or of an exec, and pipes them. */
export async function attachStreams(
  client: AgentClient,
  stdio: StdioStreams,
  opts: { tty: boolean; openStdin: boolean; exec?: string },
): Promise<Attachment> {
  const socks: Duplex[] = [];
  const ends: Promise<void>[] = [];
  try {
    const out = await client.openStream('stdout', opts.exec);
    socks.push(out);
    ends.push(pump(out, stdio.stdout));
    if (!opts.tty) {
      const err = await client.openStream('stderr', opts.exec);
      socks.push(err);
      ends.push(pump(err, stdio.stderr));
    }
    if (stdio.stdin && opts.openStdin) {
      const inp = await client.openStream('stdin', opts.exec);
      socks.push(inp);
      inp.on('error', () => {});
      inp.resume(); // the agent never writes on a stdin connection
      stdio.stdin.pipe(inp);
    }
  } catch (e) {
    for (const s of socks) s.destroy();
    throw e;
  }
  let detached = false;
  return {
    done: Promise.all(ends).then(() => {}),
    detach() {
      if (detached) return;
      detached = true;
      if (stdio.stdin) stdio.stdin.unpipe();
      for (const s of socks) s.destroy();
    },
  };
}
