// The component's export: turns the JSON text the host passes into a value,
// calls the step, and turns any exception into a `plugin_error` that carries
// its message and stack. Keep the step itself in step.js.
import { greet, Retryable, InvalidInput } from './step.js';

function failure(e) {
  const message = e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ''}` : String(e);
  if (e instanceof Retryable) return { tag: 'retryable', val: message };
  if (e instanceof InvalidInput) return { tag: 'invalid-input', val: message };
  return { tag: 'fatal', val: message };
}

export const compute = {
  run(ctx, input) {
    try {
      // Actions for other nodes: { kind: 'compute', target: 'node-id', payload: JSON.stringify({...}) }
      const actions = [];
      return { output: JSON.stringify(greet(ctx, JSON.parse(input))), actions };
    } catch (e) {
      throw failure(e);
    }
  },
};
