"""Who may ask, and how much they may send, decided on the request's headers alone.

An ASGI middleware in front of the service: a request without the right key gets 401 and one
that declares (Content-Length) or streams more body than its route allows gets 413, before a
byte of the body is read. Inside the app, FastAPI would read and parse the whole body before
any dependency could look at the key.
"""

import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass

# The page and the API description: open to anyone, no body.
OPEN_PATHS = frozenset({"/", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


@dataclass(frozen=True)
class Gate:
    keys: frozenset[str] | None  # None: open to anyone
    role: str  # "search" or "steward", for the 401's message
    max_body: int  # bytes, multipart framing included


def key_matches(authorization: str | None, keys: frozenset[str]) -> bool:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    # Compare against every key, without stopping early: timing says nothing about which matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token.strip().encode(), key.encode())
    return matched


class RequestGate:
    """`gate_for(method, path)` says which keys and how large a body; everything else passes."""

    def __init__(self, app, *, gate_for: Callable[[str, str], Gate]):
        self.app = app
        self.gate_for = gate_for

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gate = self.gate_for(scope["method"], scope["path"])
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        if gate.keys is not None and not key_matches(headers.get("authorization"), gate.keys):
            message = f"a {gate.role} API key is required (Authorization: Bearer KEY)"
            await _answer(send, 401, message, {"WWW-Authenticate": "Bearer"})
            return
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > gate.max_body):
            if not declared.isdigit():
                await _answer(send, 400, f"Content-Length is not a number: {declared[:40]!r}")
            else:
                await _answer(send, 413, f"request body larger than {gate.max_body} bytes")
            return
        answered: list = []  # set once the gate itself has answered (a streamed body ran over)
        await self.app(scope, _counting(receive, send, gate.max_body, answered), _unless(send, answered))


def _counting(receive, send, limit: int, answered: list):
    """The app's `receive`, stopped with a 413 once a streamed (chunked) body passes `limit`."""
    seen = 0

    async def receive_counted():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                if not answered:
                    answered.append(True)
                    await _answer(send, 413, f"request body larger than {limit} bytes")
                return {"type": "http.disconnect"}  # the app stops reading; its answer is dropped
        return message

    return receive_counted


def _unless(send, answered: list):
    async def send_unless_answered(message):
        if not answered:
            await send(message)

    return send_unless_answered


async def _answer(send, status: int, error: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": error}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    # The body we did not read stays unread: say so, and the connection is not reused for it.
    raw.append((b"connection", b"close"))
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
