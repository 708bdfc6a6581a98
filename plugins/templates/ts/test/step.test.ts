import { test } from 'node:test';
import assert from 'node:assert/strict';
import { greet } from '../src/step.js';
import { InvalidInput } from '../src/weft.js';

test('greets by name', () => {
  assert.deepEqual(greet({ attempt: 1 }, { name: 'Ada' }), { greeting: 'Hello, Ada!' });
});

test('refuses a missing name', () => {
  assert.throws(() => greet({ attempt: 1 }, {}), InvalidInput);
});
