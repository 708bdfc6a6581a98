// The step's logic: plain TypeScript, testable with `npm test`.
import { InvalidInput, type StepContext } from './weft.js';

/** The step's output. */
export interface Greeting {
  greeting: string;
}

/** Greets `input.name`. */
export function greet(_ctx: Pick<StepContext, 'attempt'>, input: Record<string, unknown>): Greeting {
  const name = input.name;
  if (typeof name !== 'string' || name.trim() === '') {
    throw new InvalidInput('`name` must be a non-empty string');
  }
  console.log(`greeting ${name}`);
  return { greeting: `Hello, ${name}!` };
}
