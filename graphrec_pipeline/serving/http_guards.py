"""What a request must pass before any route reads it: a body-size limit and, when one is
set, a bearer token.

Both are ASGI middleware answering with one line of JSON, as every other error of the
API does. ``/healthz`` needs no token, so that a load balancer or a Kubernetes probe can
ask without one.
"""

from __future__ import annotations

import hmac
import json

MAX_BODY_BYTES = 1 << 20  # 1 MiB: a batch of 1,000 users with its query is a few kB
OPEN_PATHS = ("/healthz",)


async def _answer(send, status: int, message: str, headers: tuple = ()) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """413 for a body over ``max_bytes``: by its declared length before reading it, or
    while reading a body sent without one."""

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        too_big = f"request body over {self.max_bytes:,} bytes"
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await _answer(send, 413, too_big)
        seen, refused = 0, False

        async def counting():
            """The app reads on; past the limit it gets the 413 sent and a disconnect."""
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                refused = True
                await _answer(send, 413, too_big)
                return {"type": "http.disconnect"}
            return message

        async def unless_refused(message):
            if not refused:
                await send(message)

        await self.app(scope, counting, unless_refused)


class BearerToken:
    """401 unless ``Authorization: Bearer <token>`` carries ``token`` (compared in constant
    time); ``/healthz`` is open."""

    def __init__(self, app, token: str):
        if not token:
            raise ValueError("an empty token would let everyone in; leave it unset instead")
        self.app, self.expected = app, f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers", [])).get(b"authorization", b"")
        if not hmac.compare_digest(given, self.expected):
            return await _answer(send, 401, "a bearer token is required (Authorization: Bearer <token>)",
                                 ((b"www-authenticate", b"Bearer"),))
        return await self.app(scope, receive, send)
