"""The step's logic: records an order with an HTTP service, once per
idempotency key, remembering in the workflow's key-value store what it did.
`http` and `kv` are passed in, so the tests can give fakes."""

import json


class Retryable(Exception):
    """A failure the workflow's retry policy may retry."""


class InvalidInput(Exception):
    """The input breaks the step's contract: never retried."""


def record(ctx, data: dict, http, kv) -> dict:
    """POSTs `data["order"]` to `data["url"]`, unless this idempotency key already did."""
    if not isinstance(data.get("url"), str):
        raise InvalidInput("`url` must be a string")
    if not isinstance(data.get("order"), dict):
        raise InvalidInput("`order` must be an object")
    key = f"sent/{ctx.idempotency_key}"
    done = kv.get(key)
    if done is not None:
        return json.loads(done)
    status, body = http.post_json(data["url"], data["order"], {"idempotency-key": ctx.idempotency_key})
    if status >= 500:
        raise Retryable(f"{data['url']} answered {status}")
    if status >= 400:
        raise RuntimeError(f"{data['url']} answered {status}")
    result = {"receipt": body, "replayed": False}
    kv.set(key, json.dumps({**result, "replayed": True}).encode())
    return result


def forget(ctx, kv) -> None:
    """Undoes `record`: forgets the receipt, so a new run sends again."""
    kv.delete(f"sent/{ctx.idempotency_key}")
