// The step's logic: plain JavaScript, testable with `node --test`.

/** A failure the workflow's retry policy may retry. */
export class Retryable extends Error {}
/** The input breaks the step's contract: never retried. */
export class InvalidInput extends Error {}

/**
 * Greets `input.name`.
 * @param {{ attempt: number, stepId: string, runId: string }} ctx the attempt's identity
 * @param {Record<string, unknown>} input the node's mapped input
 */
export function greet(ctx, input) {
  if (typeof input.name !== 'string' || input.name.trim() === '') {
    throw new InvalidInput('`name` must be a non-empty string');
  }
  console.log(`greeting ${input.name}`);
  return { greeting: `Hello, ${input.name}!` };
}
