// The types of the weft:step contract (wit/step.wit) as componentize-js
// passes them: records are objects with camelCase fields, variants are
// `{ tag, val }`, and an error result is thrown.

/** Who is calling and why: the identity of this attempt. */
export interface StepContext {
  runId: string;
  workflow: string;
  stepId: string;
  attempt: number;
  idempotencyKey: string;
  correlationId: string;
  tenant: string;
}

/** What kind of work an emitted action asks for. */
export type ActionKind = 'compute' | 'effect' | 'reduce' | 'orchestrate' | 'custom';

/** Work for another node: `payload` is a JSON object's text. */
export interface Action {
  kind: ActionKind;
  target: string;
  payload: string;
}

/** What a successful call returns: `output` is JSON text. */
export interface StepOutput {
  output: string;
  actions: Action[];
}

/** Why a call failed, as thrown from `run`. */
export type StepError =
  | { tag: 'retryable'; val: string }
  | { tag: 'fatal'; val: string }
  | { tag: 'invalid-input'; val: string };

/** A failure the workflow's retry policy may retry. */
export class Retryable extends Error {}
/** The input breaks the step's contract: never retried. */
export class InvalidInput extends Error {}

/** The StepError for an exception, with its message and stack. */
export function failure(e: unknown): StepError {
  const message = e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ''}` : String(e);
  if (e instanceof Retryable) return { tag: 'retryable', val: message };
  if (e instanceof InvalidInput) return { tag: 'invalid-input', val: message };
  return { tag: 'fatal', val: message };
}
