// The component's export: parses the input, calls the step, and turns any
// exception into a `plugin_error` with its message and stack.
import { greet } from './step.js';
import { failure, type StepContext, type StepOutput } from './weft.js';

export const compute = {
  run(ctx: StepContext, input: string): StepOutput {
    try {
      return { output: JSON.stringify(greet(ctx, JSON.parse(input))), actions: [] };
    } catch (e) {
      throw failure(e);
    }
  },
};
