"""uvicorn's HTTP protocols with one change: a request the HTTP parser rejects before any
route sees it (a URL over the parser's limit, a malformed request line) gets the API's
JSON error body instead of uvicorn's plain text, so a client parses every error alike.

``graphrec serve`` passes :func:`json_errors_protocol` to uvicorn as ``http=``; the class
is importable by name, as uvicorn's worker processes need.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.h11_impl import H11Protocol

PARSER_REJECTED = ("the request could not be parsed before routing ({reason}): a URL longer than the server's "
                   "limit of about 64 kB, or a malformed request line; send long lists in the body of the "
                   "/recommend/*/batch endpoints")


def _body(msg: str) -> bytes:
    return json.dumps({"error": PARSER_REJECTED.format(reason=msg.rstrip("."))}).encode()


class JsonErrorsH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:
        import h11

        body = _body(msg)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=body),
                      h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is optional in uvicorn: h11 serves alone
    HttpToolsProtocol = None
else:
    class JsonErrorsHttpToolsProtocol(HttpToolsProtocol):
        def send_400_response(self, msg: str) -> None:
            body = _body(msg)
            head = [b"HTTP/1.1 400 Bad Request\r\n"]
            for name, value in self.server_state.default_headers:
                head += [name, b": ", value, b"\r\n"]
            head += [b"content-type: application/json\r\n", b"content-length: " + str(len(body)).encode() + b"\r\n",
                     b"connection: close\r\n", b"\r\n"]
            self.transport.write(b"".join(head) + body)
            self.transport.close()


def json_errors_protocol() -> type:
    """The protocol class uvicorn's ``auto`` would pick (httptools when installed, else
    h11), with JSON parser errors."""
    return JsonErrorsH11Protocol if HttpToolsProtocol is None else JsonErrorsHttpToolsProtocol
