// The step's logic: records an order with an HTTP service, once per
// idempotency key, remembering in the workflow's key-value store what it did.
// `http` and `kv` are passed in, so the tests can give fakes.

/** A failure the workflow's retry policy may retry. */
export class Retryable extends Error {}
/** The input breaks the step's contract: never retried. */
export class InvalidInput extends Error {}

/**
 * Sends `input.order` to `input.url` (POST, JSON), unless this idempotency key
 * already did.
 * @param {{ idempotencyKey: string }} ctx the attempt's identity
 * @param {{ url: string, order: object }} input the node's mapped input
 * @param {{ post: (url: string, body: object, key: string) => Promise<object> }} http
 * @param {{ get: (key: string) => string | undefined, set: (key: string, value: string) => void, delete: (key: string) => boolean }} kv
 */
export async function record(ctx, input, http, kv) {
  if (typeof input.url !== 'string') throw new InvalidInput('`url` must be a string');
  if (typeof input.order !== 'object' || input.order === null) throw new InvalidInput('`order` must be an object');
  const done = kv.get(`sent/${ctx.idempotencyKey}`);
  if (done !== undefined) return JSON.parse(done);
  const receipt = await http.post(input.url, input.order, ctx.idempotencyKey);
  const result = { receipt, replayed: false };
  kv.set(`sent/${ctx.idempotencyKey}`, JSON.stringify({ ...result, replayed: true }));
  return result;
}

/** Undoes `record`: forgets the receipt, so a new run sends again. */
export function forget(ctx, kv) {
  kv.delete(`sent/${ctx.idempotencyKey}`);
}
