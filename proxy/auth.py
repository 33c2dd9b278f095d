"""Proxy authentication (407) whose every attempt the login watcher sees.

    ProxyLogin(services)    services.verify_login(login, password) -> bool, blocking (scrypt):
                           the relay's users file (mailrelay.auth.Users.verify); None: off

Modelled on mitmproxy's `proxyauth` addon (Basic credentials; a connection
authenticated by CONNECT stays authenticated for the requests inside it), with
three differences: the password check runs in a thread (scrypt takes ~50 ms
and would stall every flow on the loop), a frozen account or a blocked address
is refused before the password is looked at (407, as for a wrong password: a
guesser learns nothing), and a request on a connection whose account was
frozen since it logged in gets the "frozen" page (403). The account name is
left in `flow.metadata[USER_KEY]` for the addons after this one.

Only in regular mode: a transparent client does not know it talks to a proxy,
and cannot answer a 407.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import MutableMapping

from mitmproxy import connection, http
from mitmproxy.addons.proxyauth import is_http_proxy, parse_http_basic_auth

from audit.logins import normal_account
from proxy.frozen import frozen_response, login_required_response
from proxy.services import Services

log = logging.getLogger("leakguard.proxy.auth")

HEADER = "Proxy-Authorization"
USER_KEY = "leakguard.user"
HOLD_TTL = 1.0  # seconds a "not frozen" answer is reused: a store read per request is too many


class ProxyLogin:
    def __init__(self, services: Services) -> None:
        self.services = services
        # connection → (account, the header that logged it in)
        self.authenticated: MutableMapping[connection.Client, tuple[str, str]] = (
            weakref.WeakKeyDictionary()
        )
        self._not_frozen: dict[str, float] = {}  # account → until when that answer holds

    async def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        await self._gate(flow)

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        await self._gate(flow)

    async def _gate(self, flow: http.HTTPFlow) -> None:
        if self.services.verify_login is None or not is_http_proxy(flow):
            return
        try:
            await self._authenticate(flow)
        except Exception:  # the audit store is unreachable: fail closed
            log.exception("proxy authentication failed")
            flow.response = http.Response.make(
                503, b"The gateway cannot check logins now; try again shortly.\n",
                {"Content-Type": "text/plain; charset=utf-8", "Retry-After": "10"},
            )  # fmt: skip

    async def _authenticate(self, flow: http.HTTPFlow) -> None:
        conn, header = flow.client_conn, flow.request.headers.get(HEADER, "")
        known = self.authenticated.get(conn)
        if known is not None and header in ("", known[1]):
            flow.request.headers.pop(HEADER, None)
            if await self._frozen(known[0]):
                flow.response = frozen_response(self.services.contact, _accept(flow))
            else:
                flow.metadata[USER_KEY] = known[0]
            return
        contact = self.services.contact
        if not header:  # a browser's first try never carries credentials: not a login attempt
            flow.response = login_required_response(contact)
            return
        try:
            _scheme, login, password = parse_http_basic_auth(header)
        except ValueError:
            flow.response = login_required_response(contact)
            return
        account = normal_account(login)
        ip = flow.client_conn.peername[0] if flow.client_conn.peername else ""
        watcher = self.services.logins
        refused = watcher and await asyncio.to_thread(watcher.check, "proxy", account, ip)
        verify = self.services.verify_login
        ok = not refused and await asyncio.to_thread(verify, login, password)
        if watcher and not refused:
            refused = await asyncio.to_thread(watcher.attempt, "proxy", account, ip, ok=bool(ok))
        if not ok or refused:
            flow.response = login_required_response(contact)
            return
        self.authenticated[conn] = (account, header)
        self._not_frozen[account] = time.monotonic() + HOLD_TTL
        del flow.request.headers[HEADER]
        flow.metadata[USER_KEY] = account

    async def _frozen(self, account: str) -> bool:
        watcher = self.services.logins
        if watcher is None or self._not_frozen.get(account, 0.0) > time.monotonic():
            return False
        hold = await asyncio.to_thread(watcher.frozen, account)
        if hold is None:
            self._not_frozen[account] = time.monotonic() + HOLD_TTL
        return hold is not None


def _accept(flow: http.HTTPFlow) -> str:
    return flow.request.headers.get("Accept", "")
