// The component's exports: `run` and `compensate` of the effect world. HTTP
// goes through `fetch`, which componentize-js implements on
// wasi:http/outgoing-handler (only the URLs the node's `http` rules allow
// succeed); key-value state through weft:step/kv.
import { get, set, delete as remove } from 'weft:step/kv@0.1.2';
import { record, forget, Retryable, InvalidInput } from './step.js';

function failure(e) {
  const message = e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ''}` : String(e);
  if (e instanceof Retryable) return { tag: 'retryable', val: message };
  if (e instanceof InvalidInput) return { tag: 'invalid-input', val: message };
  return { tag: 'fatal', val: message };
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();
const kv = {
  get: (key) => {
    const value = get(key);
    return value === undefined ? undefined : decoder.decode(value);
  },
  set: (key, value) => set(key, encoder.encode(value)),
  delete: (key) => remove(key),
};

const http = {
  async post(url, body, idempotencyKey) {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
      body: JSON.stringify(body),
    });
    if (response.status >= 500) throw new Retryable(`${url} answered ${response.status}`);
    if (!response.ok) throw new Error(`${url} answered ${response.status}`);
    return response.json();
  },
};

export const effect = {
  async run(ctx, input) {
    try {
      return { output: JSON.stringify(await record(ctx, JSON.parse(input), http, kv)), actions: [] };
    } catch (e) {
      throw failure(e);
    }
  },
  compensate(ctx, _input, _output) {
    try {
      forget(ctx, kv);
    } catch (e) {
      throw failure(e);
    }
  },
};
