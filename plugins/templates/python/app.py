"""The component's export: parses the input, calls the step, and turns any
exception into a `plugin_error` that carries its message and traceback.
Keep the step itself in step.py."""

import json
import traceback

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

import step


def failure(e: Exception) -> Err:
    message = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
    if isinstance(e, step.Retryable):
        return Err(types.StepError_Retryable(message))
    if isinstance(e, step.InvalidInput):
        return Err(types.StepError_InvalidInput(message))
    return Err(types.StepError_Fatal(message))


class Compute(exports.Compute):
    def run(self, ctx: types.StepContext, input: str) -> types.StepOutput:
        try:
            output = step.greet(ctx, json.loads(input))
        except Exception as e:
            raise failure(e)
        # Actions for other nodes:
        # types.Action(kind=types.ActionKind.COMPUTE, target="node-id", payload=json.dumps({...}))
        return types.StepOutput(output=json.dumps(output), actions=[])
