"""A blocking JSON POST over wasi:http/outgoing-handler, on the event loop
that componentize-py generates (`poll_loop`). Only URLs the node's `http`
rules allow succeed; any other request fails inside the step."""

import asyncio
import json
from urllib.parse import urlsplit

import poll_loop
from poll_loop import PollLoop, Sink, Stream
from wit_world.imports.types import Fields, Method_Post, OutgoingRequest, Scheme_Http, Scheme_Https


async def _post(url: str, body: bytes, headers: dict):
    parts = urlsplit(url)
    fields = [("content-type", b"application/json"), ("content-length", str(len(body)).encode())]
    fields += [(k, v.encode()) for k, v in headers.items()]
    request = OutgoingRequest(Fields.from_list(fields))
    request.set_method(Method_Post())
    request.set_scheme(Scheme_Https() if parts.scheme == "https" else Scheme_Http())
    request.set_authority(parts.netloc)
    request.set_path_with_query(parts.path + (f"?{parts.query}" if parts.query else ""))
    sink = Sink(request.body())
    response = asyncio.ensure_future(poll_loop.send(request))
    await sink.send(body)
    sink.close()
    response = await response
    status = response.status()
    stream = Stream(response.consume())
    chunks = []
    while (chunk := await stream.next()) is not None:
        chunks.append(chunk)
    return status, b"".join(chunks)


def post_json(url: str, value, headers: dict):
    """POSTs `value` as JSON; returns (status, the decoded JSON answer or None)."""
    loop = PollLoop()
    asyncio.set_event_loop(loop)
    status, raw = loop.run_until_complete(_post(url, json.dumps(value).encode(), headers))
    return status, json.loads(raw) if raw else None
