"""Content inspection: every client→server byte that can carry data, judged by the policy.

    Inspect(services)   mitmproxy addon; hooks: requestheaders, request,
                        websocket_message, websocket_end, done

What is judged, once per request or client WebSocket message: the host, URL
path and query, and the body after its Content-Encoding (forms, multipart
files, JSON, raw uploads — whatever `rules.extract` reads), plus the short
form-field values joined together so a value split across fields is found.
The Verdict is applied: block/quarantine → block page (the origin receives
nothing); mask → the body rewritten where the format allows, else block;
allow/report/encrypt → forwarded. Errors fail closed.

Buffered bodies (the `request` hook) and WebSocket messages are judged in a
worker thread, off mitmproxy's event loop, within `limits.max_seconds`; a
decision that takes longer fails closed. Each thread has its own Engine
(`Services.engine`).

Bodies mitmproxy streams (`stream_large_bodies`, or an unknown length while
that option is set) and bodies declared larger than the inspection limit
(`limits.max_input_bytes`, which the addon streams itself) are never waved
through: a `proxy.streaming.StreamedBody` judges them chunk by chunk, holding
back a tail so that no part of a value goes upstream before its verdict. The
request head waits for the first clean bytes (`proxy.held_stream`, installed by
this addon); a block sets the page, which the layer sends when the request can
still be answered, or else the upstream request is aborted (mitmproxy cannot
kill a flow in transit: without that the origin would receive a clean end of a
truncated body). A buffered body over
the limit (chunked, with no streaming configured) gets a 413 page.

A blocked WebSocket client message is dropped, and both ends are sent a close
frame with code 1008 whose reason names the incident: the close is handed to
mitmproxy's WebSocket layer as if the client had sent it, which also stops
anything more from the client reaching the server.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from urllib.parse import unquote

import wsproto.events
from mitmproxy import ctx, http, websocket
from mitmproxy.net import encoding
from mitmproxy.net.http.http1.read import expected_http_body_size
from mitmproxy.proxy.layers.websocket import WebsocketLayer, WebSocketMessageInjected
from mitmproxy.utils import human
from wsproto.frame_protocol import Opcode

from audit.chain import iso
from audit.events import decision_event
from audit.transfers import held_verdict
from proxy import blockpage, held_stream
from proxy.addresses import plain
from proxy.auth import USER_KEY
from proxy.masking import CannotMask, mask_body, mask_query
from proxy.repeats import Repeats
from proxy.request_content import (
    InspectionError,
    body_parts,
    decoded_body,
    hidden_parts,
    joined_fields,
    upload_filename,
    url_parts,
)
from proxy.services import Services
from proxy.streaming import BodyFacts, StreamedBody, kept_for
from rules.engine import Engine
from rules.extract import extract
from rules.extract.compress import Decoded
from rules.extract.limits import size_text
from rules.findings import Finding, Part, Problem
from rules.policy import Action, Context, Policy, Verdict, evaluate
from rules.policy.model import IPAddress

log = logging.getLogger(__name__)

DEST_IP_KEY = "leakguard.dest_ip"  # the address actually connected to (agreed with isolation)
DESTINATION_KEY = "leakguard.destination"  # proxy.isolation's dict, whose "ip" is the same
STREAMED_KEY = held_stream.JUDGED  # the body is judged by a StreamedBody, not the request hook
WS_BLOCKED_KEY = "leakguard.websocket_blocked"  # incident that closed this WebSocket
WS_POLICY_VIOLATION = 1008
WS_TALLY_KEY = "leakguard.websocket_tally"  # clean client messages not yet recorded
# Clean WebSocket messages are recorded as one summed event (a chat sends hundreds), dated at
# its last message: at close, or, checked at each message, once the sum reaches a MiB or a
# minute, so a socket open all day still reaches the transfer watch.
WS_TALLY_BYTES = 2**20
WS_TALLY_SECONDS = 60.0
TOO_LARGE = 413
HOLDS = (Action.BLOCK, Action.QUARANTINE)
WORKERS = min(8, os.cpu_count() or 2)  # threads judging buffered bodies and WebSocket messages
# Plain bodies this small are judged on the loop: a worker-thread hop costs more than
# their scan (~0.2 ms per request, measured by bench/proxy.py), and the worst case —
# hostile digit runs at ~1 s/MB — stalls the loop for ~16 ms at most. Anything that
# expands (a Content-Encoding, an archive or office file) always goes to a worker.
INLINE_BELOW = 16 * 1024
_EXPANDING_MAGIC = (b"PK", b"\x1f\x8b", b"7z\xbc\xaf", b"%PDF", b"\xd0\xcf\x11\xe0", b"(\xb5/\xfd")


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    ctx: Context
    findings: tuple[Finding, ...]
    path: str | None = None  # the rewritten path and query, when masked
    body: bytes | None = None  # the rewritten body (decoded), when masked
    detail: str = ""

    @property
    def holds(self) -> bool:
        return self.verdict.action in HOLDS


class Inspect:
    def __init__(self, services: Services) -> None:
        # Streamed bodies rely on the layer holding their head (and answering a block
        # with the page): wherever this addon runs, so does that.
        held_stream.install()
        self.services = services
        self._threshold: tuple[str | None, int | None] = (None, None)
        self._workers: ThreadPoolExecutor | None = None
        self._repeats = Repeats()

    @property
    def stream_threshold(self) -> int | None:
        """mitmproxy's `stream_large_bodies`, read when needed: an addon added after the
        options were set gets no `configure` call for them."""
        text = getattr(ctx.options, "stream_large_bodies", None)  # declared by Proxyserver
        if text != self._threshold[0]:
            self._threshold = (text, human.parse_size(text))
        return self._threshold[1]

    def done(self) -> None:
        if self._workers is not None:
            self._workers.shutdown(wait=False, cancel_futures=True)
            self._workers = None

    # -- HTTP -------------------------------------------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        request = flow.request
        size = _declared_size(request)
        limit = self.services.limits.max_input_bytes
        threshold = self.stream_threshold
        streamed = (
            bool(request.stream)  # mitmproxy's choice: above stream_large_bodies
            or (threshold is not None and (size is None or size > threshold))
            or (size is not None and size > limit)  # too large to buffer: streamed, by us
        )
        if not streamed:
            return  # buffered: the request hook sees the whole body
        # The headers go upstream before the body: judge the URL now, the body as it comes.
        decision = self._decide(flow, b"")
        if decision.holds:
            self._record(flow, decision, "request headers judged before a streamed body")
            flow.kill()
            return
        if decision.path is not None:
            request.path = decision.path
        flow.metadata[STREAMED_KEY] = True
        hold = limit if threshold is None else min(threshold, limit)
        request.stream = self._streamed_body(flow, decision, size, hold)

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live or flow.metadata.get(STREAMED_KEY):
            return
        if flow.request.stream:
            # Streamed by something other than StreamedBody: already upstream, say so loudly.
            self._refuse(flow, "the request body was streamed without inspection", kill=True)
            return
        raw = flow.request.raw_content or b""
        limit = self.services.limits.max_input_bytes
        if len(raw) > limit:
            why = (
                f"the request body ({size_text(len(raw))}) is larger than the inspection "
                f"limit of {size_text(limit)}"
            )
            self._refuse(flow, why, kill=False)
            return
        inline = _small(raw, flow.request.headers.get("content-encoding", ""))
        decision = await self._off_loop(flow, lambda: self._decide(flow, raw), inline=inline)
        self._record(flow, decision)
        if decision.holds:
            self._block(flow, decision)
            return
        if decision.path is not None:
            flow.request.path = decision.path
        if decision.body is not None:
            flow.request.content = decision.body  # re-encoded; Content-Length follows

    # -- WebSocket ----------------------------------------------------------------

    async def websocket_message(self, flow: http.HTTPFlow) -> None:
        assert flow.websocket is not None
        message = flow.websocket.messages[-1]
        if not message.from_client:
            return
        if flow.metadata.get(WS_BLOCKED_KEY):
            message.drop()  # the socket was closed by policy: nothing more goes through
            return
        content, is_text = message.content, message.is_text
        decision = await self._off_loop(
            flow,
            lambda: self._decide_websocket(flow, content, is_text),
            "websocket",
            inline=_small(content, ""),
        )
        incident = self._record(flow, decision, event_type="websocket.message")
        if not _recorded(decision):
            self._tally_websocket(flow, decision, len(content))
        if decision.holds:
            message.drop()
            flow.metadata[WS_BLOCKED_KEY] = incident
            reason = f"blocked by policy (incident {incident})"
            if not _close_websocket(flow, WS_POLICY_VIOLATION, reason):
                # No live connection to close (a test harness): mark the flow as closed.
                flow.websocket.close_code = WS_POLICY_VIOLATION
                flow.websocket.close_reason = reason
                if flow.killable:
                    flow.kill()
        elif decision.body is not None:
            message.content = decision.body

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(WS_BLOCKED_KEY) and flow.websocket is not None:
            flow.websocket.closed_by_client = False  # the close was ours, sent as the client's
        self._record_tally(flow, "at close")

    def _tally_websocket(self, flow: http.HTTPFlow, decision: Decision, size: int) -> None:
        tally = flow.metadata.get(WS_TALLY_KEY)
        if tally is None:
            tally = flow.metadata[WS_TALLY_KEY] = _Tally(decision, time.monotonic())
        tally.decision = decision  # the latest context and verdict (a reload may change it)
        tally.messages += 1
        tally.size += size
        tally.last = iso(time.time())  # the event is dated at the last message it sums
        if tally.size >= WS_TALLY_BYTES or time.monotonic() - tally.since >= WS_TALLY_SECONDS:
            self._record_tally(flow, "while open")

    def _record_tally(self, flow: http.HTTPFlow, when: str) -> None:
        tally = flow.metadata.pop(WS_TALLY_KEY, None)
        if tally is None or not tally.messages:
            return
        detail = (
            f"{tally.messages} client message(s) with nothing found, "
            f"{tally.size} bytes in all, summed {when}"
        )
        event = decision_event(
            "websocket.message",
            tally.decision.verdict,
            tally.decision.ctx,
            detail=detail,
            size=tally.size,
        )
        self.services.record(replace(event, time=tally.last))  # when it was sent

    # -- deciding -----------------------------------------------------------------

    def _decide(self, flow: http.HTTPFlow, raw: bytes, channel: str | None = None) -> Decision:
        """Judge the URL and `raw` (the body as sent); never raises."""
        request = flow.request
        context = request_context(flow, channel)
        policy = self.services.policy.policy
        limits = self.services.limits
        try:
            engine = self.services.engine(policy)
            body = decoded_body(raw, request.headers, limits) if raw else Decoded(b"")
            decoded, aside = body.content, hidden_parts(body.hidden, limits)
            host, path = request.pretty_host, request.path
            if not raw and self._repeats.url_is_clean(policy, host, path):
                findings: tuple[Finding, ...] = ()
            else:
                parts = url_parts(host, path, limits) + aside
                if decoded:
                    parts += body_parts(decoded, _identity(request.headers), limits)
                findings = scan(engine, parts)
                if not raw and not findings:
                    self._repeats.remember_clean_url(policy, host, path)
            verdict = self._unless_held(self._evaluate(policy, findings, context), context)
            if verdict.action is not Action.MASK:
                return Decision(verdict, context, findings)
            return self._masked(engine, request, decoded, aside, verdict, context, findings)
        except InspectionError as err:
            return _failed(context, err.reason)
        except Exception as err:  # fail closed; the log names the error type, not content
            log.exception("inspection failed")
            return _failed(context, f"inspection failed ({type(err).__name__})")

    def _evaluate(self, policy: Policy, findings: tuple[Finding, ...], ctx: Context) -> Verdict:
        """`evaluate`, remembered for requests that carry nothing (see proxy.repeats)."""
        if findings:
            return evaluate(policy, findings, ctx)
        verdict = self._repeats.verdict(policy, ctx)
        if verdict is None:
            verdict = evaluate(policy, (), ctx)
            if verdict.rule != "fail-closed":  # an evaluation error is not a repeat answer
                self._repeats.remember_verdict(policy, ctx, verdict)
        return verdict

    def _masked(
        self,
        engine: Engine,
        request: http.Request,
        decoded: bytes,
        aside: list[Part | Problem],
        verdict: Verdict,
        context: Context,
        findings: tuple[Finding, ...],
    ) -> Decision:
        """Rewrite URL and body; if a value to mask survives anywhere, block instead.
        `aside` (what the Content-Encoding carries beside the body) is never rewritten."""
        wanted = {(f.detector, f.value_hash) for f in verdict.mask}

        def find(text: str) -> list[Finding]:
            return [f for f in engine.scan_text(text) if (f.detector, f.value_hash) in wanted]

        limits = self.services.limits
        ctype = request.headers.get("content-type", "")
        try:
            path, _, query = request.path.partition("?")
            if find(unquote(path)):
                raise CannotMask("a value in the URL path cannot be masked")
            new_path = path + ("?" + mask_query(query, find) if query else "")
            body = mask_body(decoded, ctype, find) if decoded else decoded
            parts = url_parts(request.pretty_host, new_path, limits) + aside
            if body:
                parts += body_parts(body, _identity(request.headers), limits)
            if any((f.detector, f.value_hash) in wanted for f in scan(engine, parts)):
                raise CannotMask(
                    "a value to mask is in content that cannot be rewritten (a binary or "
                    "compressed file, a compression header, or split across fields)"
                )
        except CannotMask as err:
            blocked = replace(
                verdict,
                action=Action.BLOCK,
                reason=f"{verdict.reason}; blocked because {err.reason}",
                findings=verdict.findings or verdict.mask,
                message=(
                    "已阻止：敏感信息无法安全脱敏。Blocked: the sensitive values could not be "
                    f"masked safely ({err.reason})."
                ),
            )
            return Decision(blocked, context, findings, detail=err.reason)
        return Decision(
            verdict,
            context,
            findings,
            path=new_path if new_path != request.path else None,
            body=body if body != decoded else None,
        )

    def _unless_held(self, verdict: Verdict, context: Context) -> Verdict:
        """A sender held for review (audit.transfers) sends nothing more out."""
        return held_verdict(verdict, self.services.sender_hold, context.user, context.source_ip)

    def _decide_websocket(self, flow: http.HTTPFlow, content: bytes, is_text: bool) -> Decision:
        context = request_context(flow, "websocket")
        policy = self.services.policy.policy
        try:
            engine = self.services.engine(policy)
            ctype = "text/plain; charset=utf-8" if is_text else ""
            parts = list(
                extract(
                    content,
                    content_type=ctype,
                    location="websocket message",
                    limits=self.services.limits,
                )
            )
            findings = scan(engine, parts)
            verdict = self._unless_held(evaluate(policy, findings, context), context)
            if verdict.action is not Action.MASK:
                return Decision(verdict, context, findings)
            wanted = {(f.detector, f.value_hash) for f in verdict.mask}

            def find(text: str) -> list[Finding]:
                return [f for f in engine.scan_text(text) if (f.detector, f.value_hash) in wanted]

            try:
                body = mask_body(content, ctype or "application/octet-stream", find)
            except CannotMask as err:
                blocked = replace(
                    verdict, action=Action.BLOCK, reason=f"{verdict.reason}; {err.reason}"
                )
                return Decision(blocked, context, findings, detail=err.reason)
            return Decision(verdict, context, findings, body=body)
        except Exception as err:
            log.exception("websocket inspection failed")
            return _failed(context, f"inspection failed ({type(err).__name__})")

    # -- acting -------------------------------------------------------------------

    async def _off_loop(
        self,
        flow: http.HTTPFlow,
        work: Callable[[], Decision],
        channel: str | None = None,
        *,
        inline: bool = False,
    ) -> Decision:
        """`work` in a worker thread, within the time limit; a timeout fails closed.
        `inline` (a small plain body, see INLINE_BELOW): on the loop, no thread hop."""
        if inline:
            return work()
        if self._workers is None:
            self._workers = ThreadPoolExecutor(WORKERS, thread_name_prefix="leakguard-inspect")
        seconds = self.services.limits.max_seconds
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(self._workers, work), seconds)
        except TimeoutError:
            # The thread runs on to its own budget; the flow does not wait for it.
            why = f"inspection did not finish within {seconds:g} s"
            return _failed(request_context(flow, channel), why)

    def _streamed_body(
        self, flow: http.HTTPFlow, decision: Decision, size: int | None, hold: int
    ) -> StreamedBody:
        request = flow.request
        policy = self.services.policy.policy
        limits = self.services.limits
        engine = self.services.engine(policy)
        seed = decision.findings
        if decision.path is not None:  # the masked URL is what goes upstream
            seed = scan(engine, url_parts(request.pretty_host, request.path, limits))
        facts = BodyFacts(
            encoding=request.headers.get("content-encoding", ""),
            content_type=request.headers.get("content-type", ""),
            filename=upload_filename(request.headers),
            declared=size,
        )
        outcome = _StreamOutcome(self, flow, policy, decision.ctx)
        return StreamedBody(
            facts, engine, limits, outcome, hold=hold, seed=seed, kept=kept_for(policy)
        )

    def _finish_held(self, flow: http.HTTPFlow, raw: bytes, detail: str) -> bytes | None:
        """A streamed body judged whole: the bytes to send upstream, or None (flow killed)."""
        decision = self._decide(flow, raw)
        if not decision.holds and decision.body is not None:
            decision = _fit_streamed(flow.request, raw, decision)
        self._record(flow, decision, detail)
        if decision.holds:
            self._stop_streamed(flow, decision)
            return None
        if decision.body is None:
            return raw
        ce = flow.request.headers.get("content-encoding", "")
        return encoding.encode(decision.body, ce) if ce else decision.body

    def _stop_streamed(self, flow: http.HTTPFlow, decision: Decision) -> None:
        """A streamed body blocked: the page, where the layer holds the flow (it answers at
        the body's end, or kills a flow still sending), else the flow killed here."""
        if held_stream.driven(flow):
            self._block(flow, decision)
        else:
            _abort(flow)

    def _refuse(self, flow: http.HTTPFlow, why: str, *, kill: bool) -> None:
        decision = _failed(request_context(flow), why)
        self._record(flow, decision, why)
        if kill:  # the request is (or will be) streamed: no page can replace it
            _abort(flow)
        else:
            self._block(flow, decision)
            flow.response.status_code = TOO_LARGE  # type: ignore[union-attr]

    def _block(self, flow: http.HTTPFlow, decision: Decision) -> None:
        incident = flow.metadata.get("leakguard.incident", "")
        flow.response = blockpage.block_response(
            decision.verdict,
            incident,
            self.services.contact,
            accept=flow.request.headers.get("accept", ""),
        )

    def _record(
        self,
        flow: http.HTTPFlow,
        decision: Decision,
        detail: str = "",
        event_type: str = "http.request",
    ) -> str:
        """One event per decision that matters: findings, a report-mode match, not allow, or
        content sent (every upload is in the record, for the transfer watch and the access
        log). A request that carries nothing and is allowed is covered by its connection's
        `proxy.connect` event (who, from where, to where, when, decided how); clean WebSocket
        messages are summed into one event (_tally_websocket)."""
        verdict = decision.verdict
        size = _sent_size(flow, event_type)
        carries = event_type == "http.request" and size > 0
        if not (carries or _recorded(decision)):
            return ""
        incident = ""
        if verdict.action not in (Action.ALLOW, Action.REPORT):
            incident = self.services.new_incident()
            flow.metadata["leakguard.incident"] = incident
        details = "; ".join(d for d in (detail, decision.detail) if d)
        self.services.record(
            decision_event(
                event_type,
                verdict,
                decision.ctx,
                incident=incident,
                detail=details,
                size=size,
            )
        )
        return incident


class _StreamOutcome:
    """What a StreamedBody's judgements do to one flow (proxy.streaming.Outcome)."""

    def __init__(self, addon: Inspect, flow: http.HTTPFlow, policy: Policy, ctx_: Context):
        self._addon = addon
        self._flow = flow
        self._policy = policy  # the policy the body started under, to its end
        self._ctx = ctx_

    def evaluate(self, findings: tuple[Finding, ...]) -> Verdict:
        return evaluate(self._policy, findings, self._ctx)

    def whole(self, raw: bytes, detail: str) -> bytes | None:
        return self._addon._finish_held(self._flow, raw, detail)

    def stop(self, verdict: Verdict, findings: tuple[Finding, ...], detail: str) -> None:
        decision = Decision(verdict, self._ctx, findings)
        self._addon._record(self._flow, decision, detail)
        self._addon._stop_streamed(self._flow, decision)

    def finish(self, verdict: Verdict, findings: tuple[Finding, ...], detail: str) -> None:
        self._addon._record(self._flow, Decision(verdict, self._ctx, findings), detail)


def _abort(flow: http.HTTPFlow) -> None:
    """Kill the flow and cut its upstream connection.

    mitmproxy cannot kill a flow in transit (its issue 4711): a streamed body
    would go on and end with a clean end-of-message (for a chunked body, a
    complete request with a truncated body). Closing the server connection at
    once makes the origin see an aborted request; mitmproxy then answers the
    client with an error and closes its connection.
    """
    if flow.killable:
        flow.kill()
    handler = _connection_handler(flow)
    io = handler.transports.get(flow.server_conn) if handler is not None else None
    if io is not None and io.writer is not None:
        # Closed at once: mitmproxy writes nothing to a closing writer, so the end of the
        # body that follows cannot go out. The connection's task then reads the end of
        # the stream and tells the layers, which answer the client. (Cancelling that task
        # instead races with the end of the body, and can lose the news of the close.)
        io.writer.close()


def _close_websocket(flow: http.HTTPFlow, code: int, reason: str) -> bool:
    """Close a live WebSocket at both ends with `code` and `reason`; False if not live.

    mitmproxy has no command for this (killing a WebSocket flow does nothing to
    its connections), so the close is queued on the layer's client-side
    connection as if the client had sent it, and an empty injected message
    makes the layer read it: the layer then sends the close frame to both ends
    and closes both connections. The empty message reaches this addon and is
    dropped like anything else after the block.
    """
    handler = _connection_handler(flow)
    layer = _websocket_layer(handler.layer, flow) if handler is not None else None
    if layer is None:
        return False
    reason = reason.encode()[:123].decode("utf-8", "ignore")  # a close frame's reason limit
    layer.client_ws._events.append(wsproto.events.CloseConnection(code=code, reason=reason))
    nudge = websocket.WebSocketMessage(Opcode.TEXT, True, b"")
    ctx.master.addons.get("proxyserver").inject_event(WebSocketMessageInjected(flow, nudge))
    return True


def _connection_handler(flow: http.HTTPFlow):
    """mitmproxy's handler of the flow's client connection, if it is live."""
    try:
        proxyserver = ctx.master.addons.get("proxyserver")
    except AttributeError:  # no master: not running inside mitmproxy
        return None
    connections = getattr(proxyserver, "connections", None) or {}
    return connections.get(flow.client_conn.id)


def _websocket_layer(root, flow: http.HTTPFlow) -> WebsocketLayer | None:
    """The WebSocket layer relaying `flow`, found down the connection's layer tree (a mode
    layer hands its events to its child through a bound method, hence `_handle_event`)."""
    stack, seen = [root], set()
    while stack:
        layer = stack.pop()
        if layer is None or id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, WebsocketLayer) and layer.flow is flow:
            return layer
        handler = getattr(layer, "_handle_event", None)
        stack += [
            getattr(layer, "layer", None),
            getattr(layer, "child_layer", None),
            getattr(handler, "__self__", None),
        ]
        streams = getattr(layer, "streams", None)
        if isinstance(streams, dict):
            stack += streams.values()
    return None


def scan(engine: Engine, parts: Sequence[Part | Problem]) -> tuple[Finding, ...]:
    """All findings, plus values found only when the form fields are joined."""
    findings = engine.scan_parts(parts)
    joined = joined_fields(list(parts))
    if joined is not None:
        seen = {f.value_hash for f in findings if f.value_hash}
        findings += [f for f in engine.scan_part(joined) if f.value_hash not in seen]
    return tuple(findings)


def request_context(flow: http.HTTPFlow, channel: str | None = None) -> Context:
    request = flow.request
    return Context(
        channel=channel or ("https" if request.scheme == "https" else "http"),
        source_ip=_ip(flow.client_conn.peername[0] if flow.client_conn.peername else None),
        user=flow.metadata.get(USER_KEY) or None,  # set by proxy.auth when clients log in
        host=request.pretty_host.lower().rstrip(".") or None,
        dest_ip=destination_ip(flow),
        port=request.port,
    )


def destination_ip(flow: http.HTTPFlow) -> IPAddress | None:
    """The isolation addon's resolved address, else the server address if it is an IP."""
    known = flow.metadata.get(DEST_IP_KEY)
    if not known and isinstance(flow.metadata.get(DESTINATION_KEY), dict):
        known = flow.metadata[DESTINATION_KEY].get("ip")
    if known:
        return _ip(str(known))
    server = flow.server_conn
    for address in (server.peername, server.address):
        if address and (ip := _ip(address[0])) is not None:
            return ip
    return None


@functools.lru_cache(maxsize=4096)  # peer and server addresses repeat
def _ip(text: str | None) -> IPAddress | None:
    if not text:
        return None
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    return plain(ip)


def _small(raw: bytes, content_encoding: str) -> bool:
    """Cheap enough to judge on the event loop: small, and nothing in it can expand."""
    if len(raw) >= INLINE_BELOW or content_encoding.strip().lower() not in ("", "identity"):
        return False
    return not raw.lstrip()[:8].startswith(_EXPANDING_MAGIC)


def _failed(context: Context, why: str) -> Decision:
    return Decision(Verdict().failed(why), context, ())


def _identity(headers: http.Headers) -> http.Headers:
    """Headers describing the body once its Content-Encoding is undone."""
    out = headers.copy()
    out.pop("content-encoding", None)
    return out


def _declared_size(request: http.Request) -> int | None:
    """The body's length if known in advance; None when unknown (chunked, HTTP/2 without it)."""
    try:
        size = expected_http_body_size(request)
    except ValueError:
        return None
    if size == 0 and (request.is_http2 or request.is_http3):
        return None if "content-length" not in request.headers else 0
    return None if size is None or size < 0 else size


@dataclass
class _Tally:
    decision: Decision
    since: float
    messages: int = 0
    size: int = 0
    last: str = ""  # Event.time of the last message summed


def _recorded(decision: Decision) -> bool:
    """Whether Inspect._record writes an event for a WebSocket message's decision."""
    verdict = decision.verdict
    return bool(decision.findings or verdict.reported or verdict.action is not Action.ALLOW)


def _sent_size(flow: http.HTTPFlow, event_type: str) -> int:
    """Bytes of content a decision was about, as sent (audit.transfers adds them up)."""
    if event_type == "websocket.message" and flow.websocket and flow.websocket.messages:
        return len(flow.websocket.messages[-1].content)
    if flow.request.raw_content is not None:
        return len(flow.request.raw_content)
    return _declared_size(flow.request) or 0  # streamed: what the headers announced


def _fit_streamed(request: http.Request, raw: bytes, decision: Decision) -> Decision:
    """A masked streamed body must keep its declared length (the headers are upstream)."""
    declared = request.headers.get("content-length")
    ce = request.headers.get("content-encoding", "")
    new = encoding.encode(decision.body or b"", ce) if ce else decision.body or b""
    if declared is None or len(new) == len(raw):
        return decision
    why = "a masked streamed body would change its declared length"
    blocked = replace(
        decision.verdict, action=Action.BLOCK, reason=f"{decision.verdict.reason}; {why}"
    )
    return replace(decision, verdict=blocked, body=None, detail=why)
