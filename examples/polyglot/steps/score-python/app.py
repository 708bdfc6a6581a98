"""The polyglot example's third step, in Python: scores an order's risk.
An exception (an order without lines divides by zero) becomes a
plugin_error with its message and traceback."""

import json
import sys
import traceback

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types


def score(tally: dict) -> dict:
    average = tally["total_cents"] / tally["lines"]
    risk = min(1.0, tally["total_cents"] / 100_000 + (0.25 if tally["tier"] == "large" else 0.0))
    print(f"score: average line {average:.0f} cents, risk {risk:.3f}", file=sys.stderr)
    return {**tally, "average_line_cents": round(average), "risk": round(risk, 3)}


class Compute(exports.Compute):
    def run(self, ctx: types.StepContext, input: str) -> types.StepOutput:
        try:
            return types.StepOutput(output=json.dumps(score(json.loads(input))), actions=[])
        except Exception as e:
            raise Err(types.StepError_Fatal(f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
