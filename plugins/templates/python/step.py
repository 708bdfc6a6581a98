"""The step's logic: plain Python, testable with `python -m unittest`."""


class Retryable(Exception):
    """A failure the workflow's retry policy may retry."""


class InvalidInput(Exception):
    """The input breaks the step's contract: never retried."""


def greet(ctx, data: dict) -> dict:
    """Greets `data["name"]`. `ctx.attempt`, `ctx.step_id`, `ctx.run_id`
    and `ctx.idempotency_key` say which attempt this is."""
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("`name` must be a non-empty string")
    print(f"greeting {name}")
    return {"greeting": f"Hello, {name}!"}
