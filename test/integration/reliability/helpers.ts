/** Raw HTTP over a test daemon's socket, and daemon process facts (fds, mounts) for reliability tests. */
import http from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One request; the whole body. */
export function request(
  socket: string,
  method: string,
  url: string,
  body?: Buffer | string,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, method, path: url, headers: { Host: 'docker', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/** Reads `bytes` of a response body, then hangs up (a reader that goes away early). */
export function requestAndHangUp(socket: string, url: string, bytes: number): Promise<{ status: number; got: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, method: 'GET', path: url, headers: { Host: 'docker' } }, (res) => {
      let got = 0;
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        req.destroy();
        resolve({ status: res.statusCode ?? 0, got });
      };
      res.on('data', (c: Buffer) => {
        got += c.length;
        if (got >= bytes) finish();
      });
      res.on('end', finish);
      res.on('error', finish);
    });
    req.on('error', (e) => reject(e));
    req.end();
  });
}

export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Mount points under a directory (from /proc/self/mountinfo). */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => (l.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((m) => m.startsWith(dir + '/'));
}

/** Loop devices attached to a file in `dir` (from /sys/block). */
export function loopsOver(dir: string): string[] {
  const out: string[] = [];
  for (const n of readdirSync('/sys/block').filter((x) => /^loop\d+$/.test(x))) {
    let backing: string;
    try {
      backing = readFileSync(`/sys/block/${n}/loop/backing_file`, 'utf8')
        .trim()
        .replace(/ \(deleted\)$/, '');
    } catch {
      continue;
    }
    if (backing.startsWith(dir + '/')) out.push(`/dev/${n}`);
  }
  return out;
}
