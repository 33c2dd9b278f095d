"""Content inspection: every client→server byte that can carry data, judged by the policy.

    Inspect(services)   mitmproxy addon; hooks: configure, requestheaders,
                        request, websocket_message

What is judged, once per request or client WebSocket message: the host, URL
path and query, and the body after its Content-Encoding (forms, multipart
files, JSON, raw uploads — whatever `rules.extract` reads), plus the short
form-field values joined together so a value split across fields is found.
The Verdict is applied: block/quarantine → block page (the origin receives
nothing); mask → the body rewritten where the format allows, else block;
allow/report/encrypt → forwarded. Errors fail closed.

Bodies mitmproxy would stream (`stream_large_bodies`, or an unknown length
while that option is set) get a HeldBody callable: nothing goes upstream
before the verdict, and a hold kills the flow (a page cannot be sent once
the request headers are upstream). Bodies over the inspection limit
(`services.limits.max_input_bytes`) are refused.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from urllib.parse import unquote

from mitmproxy import ctx, http
from mitmproxy.net import encoding
from mitmproxy.net.http.http1.read import expected_http_body_size
from mitmproxy.utils import human

from audit.events import decision_event
from proxy import blockpage
from proxy.addresses import plain
from proxy.holdback import HeldBody
from proxy.masking import CannotMask, mask_body, mask_query
from proxy.request_content import (
    InspectionError,
    body_parts,
    decoded_body,
    joined_fields,
    url_parts,
)
from proxy.services import Services
from rules.engine import Engine
from rules.extract import extract
from rules.extract.limits import size_text
from rules.findings import Finding, Part, Problem
from rules.policy import Action, Context, Verdict, evaluate
from rules.policy.model import IPAddress

log = logging.getLogger(__name__)

DEST_IP_KEY = "leakguard.dest_ip"  # the address actually connected to (agreed with isolation)
DESTINATION_KEY = "leakguard.destination"  # proxy.isolation's dict, whose "ip" is the same
HELD_KEY = "leakguard.held"  # the body is judged by a HeldBody, not the request hook
WS_BLOCKED_KEY = "leakguard.websocket_blocked"  # incident that closed this WebSocket
WS_POLICY_VIOLATION = 1008
TOO_LARGE = 413
HOLDS = (Action.BLOCK, Action.QUARANTINE)


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
        self.services = services
        self.stream_threshold: int | None = None

    def configure(self, updated: set[str]) -> None:
        if "stream_large_bodies" in updated:
            self.stream_threshold = human.parse_size(ctx.options.stream_large_bodies)

    # -- HTTP -------------------------------------------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        request = flow.request
        size = _declared_size(request)
        limit = self.services.limits.max_input_bytes
        streamed = bool(request.stream) or (size is None and self.stream_threshold is not None)
        if size is not None and size > limit:
            why = (
                f"the request body ({size_text(size)}) is larger than the inspection "
                f"limit of {size_text(limit)}"
            )
            self._refuse(flow, why, kill=streamed)
            return
        if not streamed:
            return  # buffered: the request hook sees the whole body
        # The headers go upstream before the body: judge the URL now, the body at its end.
        decision = self._decide(flow, b"")
        if decision.holds:
            self._record(flow, decision, "request headers judged before a streamed body")
            flow.kill()
            return
        if decision.path is not None:
            request.path = decision.path
        flow.metadata[HELD_KEY] = True
        request.stream = HeldBody(
            limit,
            decide=lambda body: self._finish_held(flow, body),
            overflow=lambda n: self._overflow(flow, n, limit),
        )

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live or flow.metadata.get(HELD_KEY):
            return
        if flow.request.stream:
            # Streamed by something other than HeldBody: already upstream, say so loudly.
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
        decision = self._decide(flow, raw)
        self._record(flow, decision)
        if decision.holds:
            self._block(flow, decision)
            return
        if decision.path is not None:
            flow.request.path = decision.path
        if decision.body is not None:
            flow.request.content = decision.body  # re-encoded; Content-Length follows

    # -- WebSocket ----------------------------------------------------------------

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        assert flow.websocket is not None
        message = flow.websocket.messages[-1]
        if not message.from_client:
            return
        if flow.metadata.get(WS_BLOCKED_KEY):
            message.drop()  # the socket was closed by policy: nothing more goes through
            return
        decision = self._decide_websocket(flow, message.content, message.is_text)
        incident = self._record(flow, decision, event_type="websocket.message")
        if decision.holds:
            message.drop()
            flow.metadata[WS_BLOCKED_KEY] = incident
            flow.websocket.close_code = WS_POLICY_VIOLATION
            flow.websocket.close_reason = f"blocked by policy (incident {incident})"
            if flow.killable:
                flow.kill()
        elif decision.body is not None:
            message.content = decision.body

    # -- deciding -----------------------------------------------------------------

    def _decide(self, flow: http.HTTPFlow, raw: bytes, channel: str | None = None) -> Decision:
        """Judge the URL and `raw` (the body as sent); never raises."""
        request = flow.request
        context = request_context(flow, channel)
        policy = self.services.policy.policy
        limits = self.services.limits
        try:
            engine = self.services.engine(policy)
            decoded = decoded_body(raw, request.headers, limits) if raw else b""
            parts = url_parts(request.pretty_host, request.path, limits)
            if decoded:
                parts += body_parts(decoded, _identity(request.headers), limits)
            findings = scan(engine, parts)
            verdict = evaluate(policy, findings, context)
            if verdict.action is not Action.MASK:
                return Decision(verdict, context, findings)
            return self._masked(engine, request, decoded, verdict, context, findings)
        except InspectionError as err:
            return _failed(context, err.reason)
        except Exception as err:  # fail closed; the log names the error type, not content
            log.exception("inspection failed")
            return _failed(context, f"inspection failed ({type(err).__name__})")

    def _masked(
        self,
        engine: Engine,
        request: http.Request,
        decoded: bytes,
        verdict: Verdict,
        context: Context,
        findings: tuple[Finding, ...],
    ) -> Decision:
        """Rewrite URL and body; if a value to mask survives anywhere, block instead."""
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
            parts = url_parts(request.pretty_host, new_path, limits)
            if body:
                parts += body_parts(body, _identity(request.headers), limits)
            if any((f.detector, f.value_hash) in wanted for f in scan(engine, parts)):
                raise CannotMask(
                    "a value to mask is in content that cannot be rewritten "
                    "(a binary or compressed file, or split across fields)"
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
            verdict = evaluate(policy, findings, context)
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

    def _finish_held(self, flow: http.HTTPFlow, raw: bytes) -> bytes | None:
        """End of a held body: the bytes to send upstream, or None (and the flow killed)."""
        decision = self._decide(flow, raw)
        if not decision.holds and decision.body is not None:
            decision = _fit_streamed(flow.request, raw, decision)
        self._record(flow, decision, "streamed body held back until judged")
        if decision.holds:
            if flow.killable:
                flow.kill()
            return None
        if decision.body is None:
            return raw
        ce = flow.request.headers.get("content-encoding", "")
        return encoding.encode(decision.body, ce) if ce else decision.body

    def _overflow(self, flow: http.HTTPFlow, size: int, limit: int) -> None:
        why = f"the streamed request body passed the inspection limit of {size_text(limit)}"
        self._record(flow, _failed(request_context(flow), why), f"{size_text(size)} received")
        if flow.killable:
            flow.kill()

    def _refuse(self, flow: http.HTTPFlow, why: str, *, kill: bool) -> None:
        decision = _failed(request_context(flow), why)
        self._record(flow, decision, why)
        if kill:  # the request is (or will be) streamed: no page can replace it
            if flow.killable:
                flow.kill()
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
        """One event per decision that matters: findings, a report-mode match, or not allow."""
        verdict = decision.verdict
        if not (decision.findings or verdict.reported or verdict.action is not Action.ALLOW):
            return ""
        incident = ""
        if verdict.action not in (Action.ALLOW, Action.REPORT):
            incident = self.services.new_incident()
            flow.metadata["leakguard.incident"] = incident
        details = "; ".join(d for d in (detail, decision.detail) if d)
        self.services.record(
            decision_event(event_type, verdict, decision.ctx, incident=incident, detail=details)
        )
        return incident


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


def _ip(text: str | None) -> IPAddress | None:
    if not text:
        return None
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    return plain(ip)


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
