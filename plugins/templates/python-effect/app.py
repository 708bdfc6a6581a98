"""The component's exports, `run` and `compensate` of the effect world: they
parse the input, call the step with real HTTP and key-value state, and turn
any exception into a `plugin_error` with its message and traceback."""

import json
import traceback

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import kv
from wit_world.imports import weft_types as types

import step
import weft_http


def failure(e: Exception) -> Err:
    message = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
    if isinstance(e, step.Retryable):
        return Err(types.StepError_Retryable(message))
    if isinstance(e, step.InvalidInput):
        return Err(types.StepError_InvalidInput(message))
    return Err(types.StepError_Fatal(message))


class Effect(exports.Effect):
    def run(self, ctx: types.StepContext, input: str) -> types.StepOutput:
        try:
            output = step.record(ctx, json.loads(input), weft_http, kv)
        except Exception as e:
            raise failure(e)
        return types.StepOutput(output=json.dumps(output), actions=[])

    def compensate(self, ctx: types.StepContext, input: str, output: str) -> None:
        try:
            step.forget(ctx, kv)
        except Exception as e:
            raise failure(e)
