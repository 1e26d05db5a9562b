/**
 * JSON schemas shared by the routes. Declared `as const`, so the json-schema-to-ts type
 * provider (`app.withTypeProvider<JsonSchemaToTsProvider>()`) types a route's params, query
 * and body from the very schema fastify validates them with.
 */

/** `:id` in a route's path */
export const idParamsSchema = { type: 'object', required: ['id'], properties: { id: { type: 'string' } } } as const;
