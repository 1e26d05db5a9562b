/**
 * The Docker Engine API server: fastify with Docker's routing conventions (optional `/v1.xx`
 * prefix, `{"message"}` errors, raw bodies for tars), route modules per resource, and the
 * hijack handler for attach/exec on the same HTTP server.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { ApiContext } from './context.js';
import { errorHandler, errorBody } from './errors.js';
import { splitVersion, versionError, commonHeaders } from './version.js';
import { SERVER_VERSION } from './streaming.js';
import { registerSystemRoutes } from './system.js';
import { registerContainerRoutes } from './containers.js';
import { registerExecRoutes, hijackRoutes } from './exec.js';
import { registerImageRoutes } from './images.js';
import { registerVolumeRoutes } from './volumes.js';
import { registerCommitRoutes } from './commit.js';
import { registerBuildRoutes } from './build.js';
import { registerNetworkRoutes } from './networks.js';
import { installHijack } from './hijack.js';

const API_VERSION_KEY = Symbol('tvm.apiVersion');
type VersionedRequest = IncomingMessage & { [API_VERSION_KEY]?: string };

export async function buildApi(ctx: ApiContext): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    exposeHeadRoutes: false,
    bodyLimit: 4 * 1024 * 1024,
    // Docker's clients send opaque IDs with dots, long names: do not be clever about paths.
    // 2048 holds a full-length container name (MAX_NAME_LENGTH, 1024) even %-encoded twice over.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 2048 },
    // Bodies are validated strictly: Docker (Go) rejects a string where a number belongs.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false, allowUnionTypes: true } },
    rewriteUrl(req) {
      const { version, url } = splitVersion(req.url ?? '/');
      (req as VersionedRequest)[API_VERSION_KEY] = version;
      return url;
    },
  });

  // Tars (load, import, cp) and anything that is not JSON reach handlers as a stream. Docker's
  // client labels raw bodies text/plain, so fastify's text parser must not swallow them.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
  app.addContentTypeParser('application/x-tar', (_req, payload, done) => done(null, payload));

  app.addHook('onRequest', async (req) => {
    const err = versionError((req.raw as VersionedRequest)[API_VERSION_KEY]);
    if (err) throw err;
  });
  app.addHook('onSend', async (_req, reply, payload) => {
    for (const [k, v] of Object.entries(commonHeaders(SERVER_VERSION))) if (!reply.hasHeader(k)) reply.header(k, v);
    return payload;
  });
  app.setErrorHandler(errorHandler(ctx.log));
  app.setNotFoundHandler((_req, reply) => {
    // fastify sends it and reports its own failures: the reply is only thenable
    void reply
      .code(404)
      .header('content-type', 'application/json')
      .send(Buffer.from(errorBody('page not found')));
  });

  registerSystemRoutes(app, ctx);
  registerContainerRoutes(app, ctx);
  registerExecRoutes(app, ctx);
  registerImageRoutes(app, ctx);
  registerVolumeRoutes(app, ctx);
  registerCommitRoutes(app, ctx);
  registerBuildRoutes(app, ctx);
  registerNetworkRoutes(app, ctx);
  installHijack(app.server, hijackRoutes(ctx), ctx.log);
  await app.ready();
  return app;
}
