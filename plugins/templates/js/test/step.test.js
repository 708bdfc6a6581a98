import { test } from 'node:test';
import assert from 'node:assert/strict';
import { greet, InvalidInput } from '../src/step.js';

test('greets by name', () => {
  assert.deepEqual(greet({ attempt: 1 }, { name: 'Ada' }), { greeting: 'Hello, Ada!' });
});

test('refuses a missing name', () => {
  assert.throws(() => greet({ attempt: 1 }, {}), InvalidInput);
});
