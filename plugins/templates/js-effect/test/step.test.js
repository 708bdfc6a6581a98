import { test } from 'node:test';
import assert from 'node:assert/strict';
import { record, forget } from '../src/step.js';

function memoryKv() {
  const m = new Map();
  return { get: (k) => m.get(k), set: (k, v) => m.set(k, v), delete: (k) => m.delete(k), size: () => m.size };
}

test('posts once per idempotency key', async () => {
  const kv = memoryKv();
  let posts = 0;
  const http = { post: async () => ({ id: ++posts }) };
  const ctx = { idempotencyKey: 'run/step' };
  const input = { url: 'http://orders.test/', order: { sku: 'A1' } };
  assert.deepEqual(await record(ctx, input, http, kv), { receipt: { id: 1 }, replayed: false });
  assert.deepEqual(await record(ctx, input, http, kv), { receipt: { id: 1 }, replayed: true });
  assert.equal(posts, 1);
  forget(ctx, kv);
  assert.equal(kv.size(), 0);
});
