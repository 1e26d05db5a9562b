/**
 * POST /images/{name}/push (`docker push [--all-tags] NAME[:TAG]`): Docker's progress stream;
 * an unknown image or repository is a 404 before the stream starts, a failure after it an
 * errorDetail message, as from dockerd.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import { NotImplementedError } from '../errors.js';
import type { Credentials } from '../images/auth.js';
import { Store } from '../images/store.js';
import { pushImage } from '../images/push.js';
import { beginStream, writeOut } from './streaming.js';
import type { ApiContext } from './context.js';

export async function pushRoute(
  ctx: ApiContext,
  name: string,
  tag: string | undefined,
  auth: Credentials | undefined,
  reply: FastifyReply,
): Promise<void> {
  const store = ctx.images;
  if (!(store instanceof Store)) throw new NotImplementedError('docker push needs the daemon image store');
  let res: ServerResponse | undefined;
  let chain: Promise<unknown> = Promise.resolve();
  const send = (o: unknown) => {
    res ??= beginStream(reply, 'application/json');
    const r = res;
    chain = chain.then(() => writeOut(r, JSON.stringify(o) + '\r\n'));
  };
  try {
    await pushImage(store, name, tag || undefined, { ...(auth && { auth }), onProgress: (p) => send(p) });
    ctx.manager.events.publish('image', 'push', tag ? `${name}:${tag}` : name, { name });
  } catch (e) {
    if (!res) throw e;
    const message = e instanceof Error ? e.message : String(e);
    send({ errorDetail: { message }, error: message });
  }
  await chain;
  (res ?? beginStream(reply, 'application/json')).end();
}
