"""mitmproxy's request streaming, changed for bodies we judge: the head waits, a block gets a page.

    install()                 before the proxy serves (the Inspect addon does it)
    JUDGED                    flow.metadata key: the body is judged by its `request.stream`
    driven(flow)              whether this layer drives the flow's body (a block then only
                              sets `flow.response`: the layer answers or kills)

mitmproxy opens the upstream connection and sends the request head as soon as a
request is streamed (`HttpStream.start_request_stream`), before its body has
been seen; a body blocked later can then only be killed, and the client gets
mitmproxy's 502 blaming the origin. For flows marked JUDGED this module makes
the layer wait: no connection is made and no head is sent until the stream
callable first releases bytes it has judged clean. So:

- a body blocked before anything was released (one that ended within the hold
  phase, a container judged whole, a value early in a body declared large)
  leaves the origin untouched: the rest of the body is read and dropped, and the
  client gets the page the addon put in `flow.response`, as for a buffered body;
- a body blocked at its end after clean bytes went upstream gets the page too,
  and the upstream request is aborted (the origin sees a cut request, never a
  clean end of a truncated body);
- a body blocked mid-way after clean bytes went upstream has its upstream
  request aborted at once; the client, still sending, gets mitmproxy's answer to
  the closed connection (a 502), as without this module.

The stream callable signals a block by setting `flow.response` (it is called
synchronously by the layer, so the layer looks right after each call). Flows
not marked JUDGED stream exactly as mitmproxy does. Once the head is upstream the
layer is in mitmproxy's own `state_stream_request_body` state (patched only for
JUDGED flows), so a client that goes away mid-upload is handled by mitmproxy.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from mitmproxy import http
from mitmproxy.proxy import commands, layer
from mitmproxy.proxy.layers.http import (
    ErrorCode,
    HttpRequestHook,
    HttpResponseHeadersHook,
    HttpStream,
    RequestData,
    RequestEndOfMessage,
    RequestHeaders,
    RequestProtocolError,
    RequestTrailers,
    SendHttp,
)
from mitmproxy.proxy.utils import expect

JUDGED = "leakguard.streamed"
_DRIVEN = "leakguard.held_stream"  # this layer holds the head and drives the body
_BLOCKED = "blocked by policy"

_original_start = HttpStream.start_request_stream
_original_stream_body = HttpStream.state_stream_request_body


def driven(flow: http.HTTPFlow) -> bool:
    """Whether this layer drives the flow's streamed body (False without the patch, as
    under mitmproxy's test harness: there a block must kill the flow itself)."""
    return bool(flow.metadata.get(_DRIVEN))


def install() -> None:
    """Patch mitmproxy's HttpStream (idempotent)."""
    HttpStream.start_request_stream = _start_request_stream
    HttpStream.state_held_request_body = _state_held_request_body
    HttpStream.state_discard_request_body = _state_discard_request_body
    HttpStream.state_stream_request_body = _state_stream_request_body


def _chunks(result: bytes | Iterable[bytes]) -> list[bytes]:
    if isinstance(result, bytes):
        return [result] if result else []
    return [chunk for chunk in result if chunk]


def _start_request_stream(self: HttpStream) -> layer.CommandGenerator[None]:
    if not self.flow.metadata.get(JUDGED):
        return (yield from _original_start(self))
    if self.flow.response:
        raise NotImplementedError("Can't set a response and enable streaming at the same time.")
    self.flow.metadata[_DRIVEN] = True
    yield commands.Log(f"Holding the request to {self.flow.request.host} until it is judged.")
    self.client_state = self.state_held_request_body


@expect(RequestData, RequestTrailers, RequestEndOfMessage)
def _state_held_request_body(self: HttpStream, event) -> layer.CommandGenerator[None]:
    """Nothing upstream yet: the body goes to the stream callable until it releases bytes."""
    if isinstance(event, RequestTrailers):
        self.flow.request.trailers = event.trailers
        return
    end = isinstance(event, RequestEndOfMessage)
    chunks = _chunks(self.flow.request.stream(b"" if end else event.data))
    if self.flow.response:  # blocked, and the origin has heard nothing
        if end:
            yield from _answer(self)
        else:
            self.client_state = self.state_discard_request_body
        return
    if (yield from self.check_killed(True)):
        return
    if end:
        yield from _send_whole(self, chunks)
        return
    if not chunks:
        return  # still held
    if not (yield from _connect(self)):
        return
    yield SendHttp(
        RequestHeaders(self.stream_id, self.flow.request, end_stream=False), self.context.server
    )
    yield from _send(self, chunks)
    self.client_state = self.state_stream_request_body


@expect(RequestData, RequestTrailers, RequestEndOfMessage)
def _state_stream_request_body(self: HttpStream, event) -> layer.CommandGenerator[None]:
    """mitmproxy's state, unless the flow is judged: then a block aborts the upstream request
    and, at the body's end, answers with the page."""
    if not driven(self.flow):
        return (yield from _original_stream_body(self, event))
    if isinstance(event, RequestTrailers):
        self.flow.request.trailers = event.trailers
        return
    end = isinstance(event, RequestEndOfMessage)
    chunks = _chunks(self.flow.request.stream(b"" if end else event.data))
    if self.flow.response:
        yield SendHttp(
            RequestProtocolError(self.stream_id, _BLOCKED, ErrorCode.KILL), self.context.server
        )
        if end:
            # The origin's closed connection still reaches this stream (as a 502 for the
            # client): an HTTP/1 client's connection ends with the page, so that cannot
            # follow it. (HTTP/2 forbids the header; a late error for an ended stream is
            # not sent there.)
            if not (self.flow.request.is_http2 or self.flow.request.is_http3):
                self.flow.response.headers["connection"] = "close"
            yield from _answer(self)
        else:
            self.flow.response = None  # the closed upstream connection answers the client
            self.client_state = self.state_discard_request_body
        return
    yield from _send(self, chunks)
    if not end:
        return
    self.flow.request.timestamp_end = time.time()
    yield HttpRequestHook(self.flow)
    self.client_state = self.state_done
    if self.flow.request.trailers:
        yield SendHttp(
            RequestTrailers(self.stream_id, self.flow.request.trailers), self.context.server
        )
    yield SendHttp(RequestEndOfMessage(self.stream_id), self.context.server)
    if self.server_state == self.state_done:
        yield from self.flow_done()


def _connect(self: HttpStream) -> layer.CommandGenerator[bool]:
    if not (yield from self.make_server_connection()):
        self.client_state = self.state_errored
        return False
    yield commands.Log(f"Streaming request to {self.flow.request.host}.")
    return True


def _send(self: HttpStream, chunks: list[bytes]) -> layer.CommandGenerator[None]:
    for chunk in chunks:
        if self.context.options.store_streamed_bodies:
            self.request_body_buf += chunk
        yield SendHttp(RequestData(self.stream_id, chunk), self.context.server)


def _send_whole(self: HttpStream, chunks: list[bytes]) -> layer.CommandGenerator[None]:
    """The body ended before any of it was released: sent as a buffered request is."""
    content = b"".join(chunks)
    if self.context.options.store_streamed_bodies:
        self.flow.request.data.content = content
    if not (yield from _request_ended(self)):
        return
    if self.flow.response:  # set by another addon's request hook
        yield from _respond(self)
        return
    if not (yield from _connect(self)):
        return
    trailers = self.flow.request.trailers
    yield SendHttp(
        RequestHeaders(self.stream_id, self.flow.request, not (content or trailers)),
        self.context.server,
    )
    if content:
        yield SendHttp(RequestData(self.stream_id, content), self.context.server)
    if trailers:
        yield SendHttp(RequestTrailers(self.stream_id, trailers), self.context.server)
    yield SendHttp(RequestEndOfMessage(self.stream_id), self.context.server)


def _answer(self: HttpStream) -> layer.CommandGenerator[None]:
    """The client has sent its whole request: the response the addon set goes back."""
    if (yield from _request_ended(self)):
        yield from _respond(self)


def _request_ended(self: HttpStream) -> layer.CommandGenerator[bool]:
    """The client's request is whole: timestamped and the request hook run, as mitmproxy
    does for a buffered body. False if the flow was killed meanwhile (the client is told)."""
    self.flow.request.timestamp_end = time.time()
    self.client_state = self.state_done
    yield HttpRequestHook(self.flow)
    return not (yield from self.check_killed(True))


def _respond(self: HttpStream) -> layer.CommandGenerator[None]:
    # As mitmproxy does for a response set by an addon: emulate the responseheaders hook.
    self.flow.response.timestamp_start = time.time()
    yield HttpResponseHeadersHook(self.flow)
    if (yield from self.check_killed(True)):
        return
    yield from self.send_response()


@expect(RequestData, RequestTrailers, RequestEndOfMessage)
def _state_discard_request_body(self: HttpStream, event) -> layer.CommandGenerator[None]:
    """Blocked while the client was still sending: the rest is dropped; at its end the page
    goes back, if one was set (the origin heard nothing)."""
    if isinstance(event, RequestEndOfMessage) and self.flow.response:
        yield from _answer(self)
