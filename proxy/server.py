"""The proxy as a library: mitmproxy's master with our addons and our options.

    build_master(settings, services, state_dir, confdir) -> Master

Order matters: mitmproxy's addons first (proxyserver, tlsconfig — the
isolation hooks read what they set), then ClientSetup (answers requests for
the proxy itself before Isolation would refuse them as a loop), Isolation
(where a flow may go), Inspect (what it may carry), and Ready (says where the
proxy listens, once it does).

Options chosen, and why:
- connection_strategy=lazy: no upstream connection before a request has been
  judged, so a blocked request never touches the origin. A streamed body's
  head waits too (`proxy.held_stream`, installed by Inspect): mitmproxy
  would send it before the body is seen.
- stream_large_bodies=settings.stream_above: bodies above it are judged as a
  stream (bounded memory) instead of held whole; body_size_limit stays unset,
  since Inspect, not mitmproxy, decides what is too large to inspect.
- no onboarding: the CA and PAC are served by ClientSetup on the proxy's own
  address, from our CA directory, not by mitm.it.

Only the mitmproxy addons a gateway needs (`mitm_addons()`), not the 31 of
`default_addons()`: mitmproxy calls every addon for every hook of every flow
(`_iter_hooks` and a context manager per call were ~15 % of the event loop's
time for small keep-alive requests), and the rest are features an inline
DLP gateway must not have — traffic rewriting by option (map_remote,
modify_body), replay, flow saving (request bodies on disk), scripts, the
onboarding app. What is kept: Core (option checks), Block (refuses clients
from public addresses unless allowed), StripDnsHttpsRecords and DisableH2C
(no upgrade around interception), Proxyserver, DnsResolver, NextLayer,
TlsConfig, UpstreamAuth and ErrorCheck (a startup error stops the proxy
instead of leaving it half up).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mitmproxy import ctx, options
from mitmproxy.addons import (
    block,
    core,
    disable_h2c,
    dns_resolver,
    errorcheck,
    next_layer,
    proxyserver,
    strip_dns_https_records,
    tlsconfig,
    upstream_auth,
)
from mitmproxy.master import Master

from proxy.auth import ProxyLogin
from proxy.client_setup import ClientSetup
from proxy.inspect import Inspect
from proxy.isolation import Isolation
from proxy.services import Services
from proxy.web_logins import WebLogins

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProxySettings:
    host: str = "127.0.0.1"
    port: int = 8080
    mode: str = "regular"  # or "transparent"
    stream_above: int = 16 * 2**20
    upstream_ca: Path | None = None


@dataclass
class Ready:
    """Calls `on_ready(addresses)` once the proxy listens (port 0 becomes a real port)."""

    on_ready: Callable[[list[tuple[str, int]]], None]
    addresses: list[tuple[str, int]] = field(default_factory=list)

    def running(self) -> None:
        proxyserver = ctx.master.addons.get("proxyserver")
        self.addresses = [(a[0], a[1]) for a in proxyserver.listen_addrs()]
        self.on_ready(self.addresses)


def mitm_addons() -> list:
    """mitmproxy's own addons, in default_addons() order, then DumpMaster's ErrorCheck
    (fresh instances each call)."""
    return [
        core.Core(),
        block.Block(),
        strip_dns_https_records.StripDnsHttpsRecords(),
        disable_h2c.DisableH2C(),
        proxyserver.Proxyserver(),
        dns_resolver.DnsResolver(),
        next_layer.NextLayer(),
        tlsconfig.TlsConfig(),
        upstream_auth.UpstreamAuth(),
        errorcheck.ErrorCheck(),
    ]


def build_master(
    settings: ProxySettings,
    services: Services,
    state_dir: Path,
    confdir: Path,
    on_ready: Callable[[list[tuple[str, int]]], None] | None = None,
) -> Master:
    opts = options.Options(
        listen_host=settings.host,
        listen_port=settings.port,
        mode=[settings.mode],
        confdir=str(confdir),
    )
    if settings.upstream_ca is not None:
        opts.update(ssl_verify_upstream_trusted_ca=str(settings.upstream_ca))
    master = Master(opts, with_termlog=False)
    master.addons.add(*mitm_addons())
    master.addons.add(
        ClientSetup(services, state_dir),
        ProxyLogin(services),  # 407 and the "frozen" page; off without services.verify_login
        Isolation(services),
        Inspect(services),
        WebLogins(services),  # watch.yaml's web_apps: logins seen on their way through
        Ready(on_ready or (lambda _addresses: None)),
    )
    # After the addons: mitmproxy calls `configure` only for options that change once
    # an addon is registered, so options set before `add` are never seen by our addons'
    # `configure` (Inspect once missed stream_large_bodies that way, and left a body of
    # unknown length to mitmproxy, which streamed it past the threshold unjudged).
    master.options.update(
        connection_strategy="lazy",
        stream_large_bodies=str(settings.stream_above),
    )
    return master
