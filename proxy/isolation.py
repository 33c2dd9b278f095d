"""Zone isolation: which source may reach which address, decided on the address connected to.

One decision per client connection and destination, made before any byte
goes upstream and recorded as a `proxy.connect` event:

    http_connect     regular mode CONNECT: resolve the target, decide, 403 page if held
    requestheaders   plain HTTP through the proxy (absolute-form): the same, 403 page;
                     every request: Host must agree with the CONNECT target / URL / SNI
    tls_clienthello  SNI must agree with the CONNECT target (else the TLS connection is
                     closed in tls_start_client); hosts in `tls_passthrough` are tunnelled
    server_connect   the backstop every upstream connection passes (transparent mode,
                     SOCKS, lazy connects): decide if not yet decided, kill if held, and
                     pin `server.address` to the decided IP so no second lookup can
                     return another address (DNS rebinding); the SNI keeps the name
    server_connected the pin is undone once connected (`peername` keeps the real IP), so
                     requests keep their host name and connections are reused
    tls_failed_client  a client that refuses our certificate (pinned) is recorded

The destination is always an IP: the transparent mode's original destination,
or what the proxy itself resolved (asynchronously, once). Host names that are
IP literals in odd notations (`0x0a.9.0.5`, `2130706433`) are read as the
address they name (proxy.addresses). Anything that goes wrong fails closed.

Names in transparent mode. The address is the kernel's (SO_ORIGINAL_DST); the
name is whatever the client wrote, and the policy gives names their treatment
(an approved party, a category, a rule's `host`). A name is believed only when
something proves it belongs to the address:
- TLS with SNI: mitmproxy verifies the origin's certificate against the SNI
  before any request goes upstream; every Host must equal the SNI.
- TLS without SNI: the connection's first Host becomes the upstream SNI
  (server_connect), so the certificate is verified against it; every later
  Host on the connection must equal it.
- Plain HTTP: nothing is verified upstream, so the gateway looks the Host name
  up (`_addresses`, which honours `services.hosts`) and believes it only if
  one of its addresses is the original destination. Checked per request (a
  keep-alive connection may carry another Host each time), cached per
  connection. A name not believed is dropped: the connection is decided on
  the address alone (Context host=None) and the event's detail says why. If
  the name would also change what the policy sees — a party, a category or
  zone, a rule's `host` condition — the request is refused as fronting
  (`isolation:fronting`): inspection reads the Host header, so letting it
  through would give the spoofed name's treatment. A lookup is only made when
  the connection would be allowed: a name can make a decision stricter, never
  laxer, so a block stands without one.
  Trade-off: plain HTTP to a policy-relevant name whose addresses differ
  between the client's resolver and the gateway's (round-robin, geo-DNS) is
  refused; clients should use the gateway's resolver, or HTTPS.

The hooks rely on running after mitmproxy's own addons (proxyserver, tlsconfig),
which is where `addons.add` puts an addon added after the defaults.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
from dataclasses import dataclass, field, replace

from mitmproxy import connection, ctx, http, tls
from mitmproxy.net.http.url import parse_authority
from mitmproxy.proxy import server_hooks

from audit.events import decision_event
from proxy.addresses import IPAddress, host_ip, normal_host, plain
from proxy.blockpage import block_response
from proxy.services import Services
from rules.policy import Action, Context, Mode, Place, Verdict, evaluate
from rules.policy.evaluate import DEFAULT_MESSAGES
from rules.policy.places import covered

log = logging.getLogger(__name__)

RESOLVE_TIMEOUT = 10.0  # seconds; a resolver that hangs must not hold the connection open
METADATA = "leakguard.destination"  # flow.metadata key: where the flow really goes
HTTP_MODES = ("regular", "upstream")  # modes in which clients send CONNECT / absolute-form


@dataclass(frozen=True, slots=True)
class Decision:
    """A connection's destination as decided: the address connected to and the verdict."""

    ctx: Context
    verdict: Verdict
    incident: str = ""

    @property
    def holds(self) -> bool:
        return self.verdict.action.holds

    @property
    def address(self) -> tuple[str, int]:
        return str(self.ctx.dest_ip), self.ctx.port or 0

    def to_metadata(self) -> dict:
        return {
            "ip": str(self.ctx.dest_ip or ""),
            "port": self.ctx.port,
            "host": self.ctx.host or "",
            "channel": self.ctx.channel,
            "source_zone": self.verdict.place.source_zone,
            "destination_zone": self.verdict.place.destination_zone,
            "action": str(self.verdict.action),
            "rule": self.verdict.rule,
            "incident": self.incident,
        }


@dataclass(slots=True)
class _Client:
    """What one client connection has told us so far."""

    connect: tuple[str, int] | None = None  # CONNECT target, normalised
    connect_decision: Decision | None = None
    sni: str | None = None
    refused: Decision | None = None  # a block for the whole connection (fronting)
    decisions: dict[tuple[str, int], asyncio.Task[Decision]] = field(default_factory=dict)
    # transparent plain HTTP: (Host name, original destination) → '' if believed, else why not
    names: dict[tuple[str, str], str] = field(default_factory=dict)


class Isolation:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._clients: dict[str, _Client] = {}
        self._pinned: dict[str, tuple[str, int]] = {}  # server id → address before the pin

    # -- hooks ------------------------------------------------------------------------------

    async def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        try:
            state = self._client(flow.client_conn)
            state.connect = (normal_host(flow.request.host), flow.request.port)
            decision = await self._decide(flow.client_conn, flow.request.host, flow.request.port)
            state.connect_decision = decision
            self._answer(flow, decision)
        except Exception as err:
            self._fail_http(flow, err)

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        try:
            client = flow.client_conn
            state = self._client(client)
            if state.refused is not None:
                self._answer(flow, state.refused)
                return
            target, name = self._target(flow, state)
            if target is None:
                return
            channel = "https" if flow.request.scheme == "https" else "http"
            verify = _mode(client) not in HTTP_MODES and channel == "http"
            decision = await self._decide(client, target[0], target[1], channel, name, verify)
            flow.metadata[METADATA] = decision.to_metadata()
            if decision.holds:
                self._answer(flow, decision)
                return
            mismatch = self._host_mismatch(flow, state, target)
            if not mismatch and _mode(client) not in HTTP_MODES:
                mismatch = await self._transparent_host(flow, state, decision)
            if mismatch:
                state.refused = self._fronting(decision, mismatch)
                self._answer(flow, state.refused)
        except Exception as err:
            self._fail_http(flow, err)

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        client = data.context.client
        state = self._client(client)
        try:
            if _mode(client) in HTTP_MODES and state.connect is None:
                return  # TLS to the proxy itself (secure web proxy), not to a destination
            sni = data.client_hello.sni
            state.sni = normal_host(sni) if sni else None
            if state.sni and state.connect and state.sni != state.connect[0]:
                base = state.connect_decision or self._bare(client, state.connect)
                why = f"CONNECT {_fmt(state.connect)} but TLS SNI {state.sni}"
                state.refused = self._fronting(base, why)
                data.establish_server_tls_first = False  # nothing reaches the server
                return
            name = state.sni or (state.connect[0] if state.connect else None)
            passthrough = self.services.policy.policy.tls_passthrough
            if name and covered(name, passthrough):
                data.ignore_connection = True
                base = state.connect_decision or self._bare(client, None, name)
                self._note(base, "proxy.passthrough", "tls_passthrough", f"{name}: not inspected")
        except Exception as err:
            log.exception("isolation: tls_clienthello failed; closing the connection")
            state.refused = self._failed(self._bare(client, None), err)

    def tls_start_client(self, data: tls.TlsData) -> None:
        state = self._clients.get(data.context.client.id)
        if state is not None and state.refused is not None:
            data.ssl_conn = None  # no TLS context: mitmproxy closes the client connection

    def tls_failed_client(self, data: tls.TlsData) -> None:
        try:
            client = data.context.client
            state = self._client(client)
            name = state.sni or (state.connect[0] if state.connect else None)
            base = state.connect_decision or self._bare(client, state.connect, name)
            why = (
                f"the client refused the interception certificate for {name or 'this host'} "
                f"({data.conn.error or 'handshake failed'}): the connection cannot be inspected "
                "and was refused; list the host in tls_passthrough to tunnel it uninspected"
            )
            self._note(base, "proxy.tls_failed", "isolation:uninspectable", why, block=True)
        except Exception:
            log.exception("isolation: tls_failed_client could not be recorded")

    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        server = data.server
        if server.error or not server.address:
            return
        try:
            state = self._client(data.client)
            if state.refused is not None:
                server.error = _kill_reason(state.refused)
                return
            host, port = server.address[0], server.address[1]
            channel = "https" if server.tls or state.connect or port == 443 else "http"
            decision = await self._decide(data.client, host, port, channel, state.sni)
            if decision.holds:
                server.error = _kill_reason(decision)
                return
            self._pinned[server.id] = (host, port)
            server.address = decision.address
            name = decision.ctx.host
            if name and server.sni is None:
                server.sni = name  # upstream TLS still names the host we decided for
        except Exception as err:
            log.exception("isolation: server_connect failed; refusing the connection")
            server.error = f"leakguard isolation failed closed ({type(err).__name__})"

    def server_connected(self, data: server_hooks.ServerConnectionHookData) -> None:
        self._unpin(data.server)

    def server_connect_error(self, data: server_hooks.ServerConnectionHookData) -> None:
        self._unpin(data.server)

    def client_disconnected(self, client: connection.Client) -> None:
        self._clients.pop(client.id, None)

    # -- deciding ---------------------------------------------------------------------------

    async def _decide(
        self,
        client: connection.Client,
        host: str,
        port: int,
        channel: str = "https",
        name: str | None = None,
        verify: bool = False,
    ) -> Decision:
        """One decision (one lookup, one event) per client connection and destination.

        `verify`: `name` is a plain-HTTP Host in transparent mode, believed only if it
        resolves to the address (see the module docstring)."""
        state = self._client(client)
        try:
            key = (normal_host(host), port)
        except ValueError:
            key = (host, port)
        task = state.decisions.get(key)
        if task is None:
            task = asyncio.ensure_future(self._make(client, host, port, channel, name, verify))
            state.decisions[key] = task
        elif task.done():
            return task.result()  # the usual case on a kept-alive connection: no new future
        return await asyncio.shield(task)  # a cancelled waiter must not cancel the others

    async def _make(
        self,
        client: connection.Client,
        host: str,
        port: int,
        channel: str,
        name: str | None,
        verify: bool = False,
    ) -> Decision:
        source = _peer_ip(client)
        shown = name
        try:
            ip = host_ip(host)
            if ip is None:
                shown = normal_host(host)
                ip = await self._resolve(shown, port)
        except (OSError, ValueError, TimeoutError) as err:
            ctx_ = Context(channel=channel, source_ip=source, host=shown or host, port=port)
            why = f"the proxy could not resolve {host!r} ({type(err).__name__}: {err})"
            return self._record(ctx_, self._isolation_verdict(ctx_, "isolation:unresolved", why))
        ctx_ = Context(channel=channel, source_ip=source, host=shown, dest_ip=ip, port=port)
        own = self._own_address(client, ip, port)
        if own:
            return self._record(ctx_, self._isolation_verdict(ctx_, "isolation:self", own))
        policy = self.services.policy.policy
        verdict = evaluate(policy, [], ctx_)
        detail = ""
        if verify and shown and not verdict.action.holds:  # a block needs no proof of the name
            detail = await self._check_name(client, shown, ip, port)
            if detail:
                ctx_ = replace(ctx_, host=None)
                verdict = evaluate(policy, [], ctx_)
                detail += "; decided on the address alone"
        return self._record(ctx_, verdict, detail)

    async def _resolve(self, host: str, port: int) -> IPAddress:
        """The proxy's own lookup: the first address, the one it will connect to."""
        return (await self._addresses(host, port))[0]

    async def _addresses(self, host: str, port: int) -> list[IPAddress]:
        """Every address `host` has for the proxy: `services.hosts` first, else DNS."""
        pinned = self.services.hosts.get(host)
        if pinned is not None:
            return [plain(pinned)]
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        if not infos:
            raise OSError(f"no address for {host}")
        out: list[IPAddress] = []
        for info in infos:
            ip = plain(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
            if ip not in out:
                out.append(ip)
        return out

    async def _check_name(
        self, client: connection.Client, name: str, ip: IPAddress, port: int
    ) -> str:
        """'' if the plain-HTTP Host `name` resolves (here) to `ip`, else why not. Cached."""
        state = self._client(client)
        key = (name, str(ip))
        if key in state.names:
            return state.names[key]
        try:
            literal = host_ip(name)
            if literal is not None:
                addresses = [literal]
            else:
                addresses = await self._addresses(name, port)
        except (OSError, ValueError, TimeoutError) as err:
            why = (
                f"Host {name} cannot be checked against {ip}, the address connected to: "
                f"the gateway cannot resolve it ({type(err).__name__}: {err})"
            )
        else:
            if ip in addresses:
                why = ""
            else:
                shown = ", ".join(str(a) for a in addresses[:4])
                more = ", ..." if len(addresses) > 4 else ""
                why = (
                    f"Host {name} is not {ip}, the address connected to "
                    f"(the gateway resolves it to {shown}{more})"
                )
        state.names[key] = why
        return why

    async def _transparent_host(
        self, flow: http.HTTPFlow, state: _Client, decision: Decision
    ) -> str:
        """Transparent mode: '' when this request's Host may be believed (or cannot matter)."""
        host, _port = _host_header(flow)
        if not host or state.sni:
            return ""  # no name, or TLS with SNI (Host == SNI is checked by _host_mismatch)
        named = decision.ctx.host
        if flow.request.scheme == "https":
            # TLS without SNI: upstream TLS is verified against the decision's name
            if host != named:
                return (
                    f"a TLS connection without SNI, verified for "
                    f"{named or decision.ctx.dest_ip}, but Host {host}"
                )
            return ""
        if host == named:
            return ""  # the decision believed this very name
        ip = decision.ctx.dest_ip
        if ip is None:
            return f"Host {host} on a connection with no known address"
        why = await self._check_name(flow.client_conn, host, ip, decision.ctx.port or 0)
        if why and self._name_matters(host, decision.ctx):
            return why + "; the name would change the policy's treatment"
        return ""

    def _name_matters(self, name: str, ctx_: Context) -> bool:
        """Would the policy see this destination differently with the name than without?"""
        policy = self.services.policy.policy
        places = policy.compiled.places
        bare = replace(ctx_, host=None)
        named = places.resolve(replace(ctx_, host=name))
        if replace(named, destination="") != replace(places.resolve(bare), destination=""):
            return True
        return any(rule.when.host and covered(name, rule.when.host) for rule in policy.rules)

    def _own_address(self, client: connection.Client, ip: IPAddress, port: int) -> str:
        """The proxy's own listening port: connecting there loops (mitmproxy's check knows
        only literal localhost and the listen address, not names that resolve to them)."""
        if ip.is_unspecified:
            return f"{ip} is not a destination"
        master = getattr(ctx, "master", None)
        proxyserver = master.addons.get("proxyserver") if master else None
        if proxyserver is None:
            return ""
        local = {_ip(client.sockname[0])} if client.sockname else set()
        for listen_host, listen_port, *_ in proxyserver.listen_addrs():
            listen_ip = _ip(listen_host)
            if listen_port == port and (ip.is_loopback or ip == listen_ip or ip in local):
                return f"{ip}:{port} is the proxy's own address"
        return ""

    def _record(self, ctx_: Context, verdict: Verdict, detail: str = "") -> Decision:
        incident = self.services.new_incident() if verdict.action.holds else ""
        event = decision_event("proxy.connect", verdict, ctx_, incident=incident, detail=detail)
        self.services.record(event)
        return Decision(ctx_, verdict, incident)

    def _isolation_verdict(self, ctx_: Context, rule: str, reason: str) -> Verdict:
        place = _place(self.services, ctx_)
        return Verdict(
            rule=rule,
            reason=reason,
            message=DEFAULT_MESSAGES[Action.BLOCK].format(rule=rule, reason=reason),
            place=place,
        )

    def _fronting(self, base: Decision, why: str) -> Decision:
        """The names a client gave for one connection disagree: block and record."""
        rule = "isolation:fronting"
        reason = f"the destination names disagree ({why}); possible domain fronting"
        verdict = replace(
            self._isolation_verdict(base.ctx, rule, reason),
            place=base.verdict.place,
            mode=Mode.ENFORCE,
        )
        return self._record(base.ctx, verdict)

    def _note(self, base: Decision, kind: str, rule: str, why: str, block: bool = False) -> None:
        """An event beside the connection's decision (passthrough, refused certificate)."""
        action = Action.BLOCK if block else Action.ALLOW
        verdict = replace(self._isolation_verdict(base.ctx, rule, why), action=action)
        verdict = replace(verdict, place=base.verdict.place, message="" if not block else why)
        incident = self.services.new_incident() if block else ""
        self.services.record(decision_event(kind, verdict, base.ctx, incident=incident))

    def _failed(self, base: Decision, err: Exception) -> Decision:
        reason = f"isolation failed ({type(err).__name__}); blocked because no decision was reached"
        verdict = replace(Verdict().failed(reason), place=base.verdict.place)
        try:
            return self._record(base.ctx, verdict)
        except Exception:
            log.exception("isolation: the fail-closed event could not be recorded")
            return Decision(base.ctx, verdict, self.services.new_incident())

    def _bare(
        self, client: connection.Client, target: tuple[str, int] | None, name: str | None = None
    ) -> Decision:
        """A stand-in decision for events about a connection not (yet) decided."""
        host = name or (target[0] if target else None)
        ctx_ = Context(
            channel="https",
            source_ip=_peer_ip(client),
            host=host,
            dest_ip=host_ip(host) if host else None,
            port=target[1] if target else None,
        )
        return Decision(ctx_, Verdict(place=_place(self.services, ctx_)))

    # -- requests ---------------------------------------------------------------------------

    def _target(
        self, flow: http.HTTPFlow, state: _Client
    ) -> tuple[tuple[str, int] | None, str | None]:
        """Where this request's connection goes, and the name the client gave it."""
        client = flow.client_conn
        if _mode(client) in HTTP_MODES:
            if state.connect is not None:
                return state.connect, None  # inside a CONNECT tunnel: decided at CONNECT
            return (flow.request.host, flow.request.port), None  # absolute-form plain HTTP
        if not flow.server_conn.address:
            return None, None
        address = flow.server_conn.address
        name = state.sni or _host_header(flow)[0]
        return (address[0], address[1]), name

    def _host_mismatch(self, flow: http.HTTPFlow, state: _Client, target: tuple[str, int]) -> str:
        """'' when the Host header agrees with the connection's other names, else why not."""
        host, port = _host_header(flow)
        if not host:
            return ""
        default = 443 if flow.request.scheme == "https" else 80
        given = (host, port or default)
        # in transparent mode the target is the kernel's original destination (an IP), which
        # no name can be compared with; in the HTTP modes the client named it
        named = (normal_host(target[0]), target[1])
        if _mode(flow.client_conn) in HTTP_MODES and given != named:
            what = "CONNECT" if state.connect else "URL"
            return f"{what} {_fmt(named)} but Host {_fmt(given)}"
        if state.sni and state.sni != host:
            return f"TLS SNI {state.sni} but Host {_fmt(given)}"
        return ""

    def _answer(self, flow: http.HTTPFlow, decision: Decision) -> None:
        if not decision.holds:
            return
        accept = flow.request.headers.get("accept", "")
        flow.response = block_response(
            decision.verdict, decision.incident, self.services.contact, accept
        )
        flow.metadata[METADATA] = decision.to_metadata()

    def _fail_http(self, flow: http.HTTPFlow, err: Exception) -> None:
        log.exception("isolation failed; blocking %s", flow.request.pretty_host)
        try:
            base = self._bare(flow.client_conn, None, None)
        except Exception:
            base = Decision(Context(channel="http"), Verdict())
        decision = self._failed(base, err)
        try:
            self._answer(flow, decision)
        except Exception:
            log.exception("isolation: no block page; killing the flow")
            flow.kill()

    def _client(self, client: connection.Client) -> _Client:
        return self._clients.setdefault(client.id, _Client())

    def _unpin(self, server: connection.Server) -> None:
        original = self._pinned.pop(server.id, None)
        if original is not None and server.address != original:
            # Connected: `peername` holds the IP actually used. The name goes back so the
            # connection is reused for the next request to that name; mitmproxy's setter
            # refuses any change on an open connection, which this one (no reconnect
            # follows) deliberately is not, so the attribute is restored directly.
            server.__dict__["address"] = original


def _mode(client: connection.Client) -> str:
    return client.proxy_mode.type_name


@functools.lru_cache(maxsize=4096)  # peer and server addresses repeat
def _ip(text: str) -> IPAddress | None:
    try:
        return plain(ipaddress.ip_address(text))
    except ValueError:
        return None


def _peer_ip(client: connection.Client) -> IPAddress | None:
    return _ip(client.peername[0]) if client.peername else None


def _host_header(flow: http.HTTPFlow) -> tuple[str | None, int | None]:
    header = flow.request.host_header
    if not header:
        return None, None
    host, port = parse_authority(header, check=True)  # malformed → ValueError → fail closed
    return normal_host(host), port


def _place(services: Services, ctx_: Context) -> Place:
    try:
        return services.policy.policy.compiled.places.resolve(ctx_)
    except Exception:
        return Place(destination=ctx_.host or str(ctx_.dest_ip or ""))


def _fmt(target: tuple[str, int]) -> str:
    host, port = target
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _kill_reason(decision: Decision) -> str:
    return f"blocked by leakguard ({decision.verdict.rule}, incident {decision.incident})"


__all__ = ["METADATA", "Decision", "Isolation"]
