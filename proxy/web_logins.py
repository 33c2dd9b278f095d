"""Logins to internal web applications, watched on the way through the proxy.

watch.yaml names each application: host, the login form's POST path, the
field holding the account name, and how a failure shows (status codes, a
redirect whose Location holds some text, or a marker in the body). For such a
POST the account is read from the form or JSON body (never the password), the
login watcher is asked first (a frozen account or blocked address gets the
"frozen" page and the application never sees the attempt), and the response
tells success from failure for the watcher's counts. When a successful login
freezes the account (an anomaly the policy holds), the application's answer,
session cookie included, is replaced by the "frozen" page.
"""

from __future__ import annotations

import asyncio
import json
import logging

from mitmproxy import http

from audit.logins import normal_account
from audit.watch_settings import FailureSign, WebLogin
from proxy.frozen import frozen_response
from proxy.services import Services

log = logging.getLogger("leakguard.proxy.web_logins")

SEEN_KEY = "leakguard.web_login"  # flow.metadata: (application name, account)


class WebLogins:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def request(self, flow: http.HTTPFlow) -> None:
        watcher = self.services.logins
        if watcher is None or flow.response or flow.error or not flow.live:
            return
        if flow.request.method != "POST":
            return
        app = login_form(self.services.policy.policy.watch.logins.web_apps, flow.request)
        if app is None:
            return
        account = normal_account(username(flow.request, app.username_field))
        if not account:
            log.info("login POST to web app %s without a %s field", app.name, app.username_field)
            return
        refused = await asyncio.to_thread(watcher.check, "web", account, _peer(flow))
        if refused:
            flow.response = frozen_response(self.services.contact, _accept(flow))
            return
        flow.metadata[SEEN_KEY] = (app.name, account)

    async def response(self, flow: http.HTTPFlow) -> None:
        seen = flow.metadata.get(SEEN_KEY)
        watcher = self.services.logins
        if not seen or watcher is None or flow.response is None:
            return
        name, account = seen
        apps = self.services.policy.policy.watch.logins.web_apps
        app = next((a for a in apps if a.name == name), None)
        if app is None:  # the policy was reloaded without it meanwhile
            return
        outcome = login_failed(app.failure, flow.response)
        if outcome is None:
            return
        attempt = watcher.attempt
        refused = await asyncio.to_thread(attempt, "web", account, _peer(flow), ok=not outcome)
        if refused:
            flow.response = frozen_response(self.services.contact, _accept(flow))


def login_form(apps: tuple[WebLogin, ...], request: http.Request) -> WebLogin | None:
    host = request.pretty_host.lower().rstrip(".")
    path = request.path.split("?", 1)[0]
    for app in apps:
        if app.path == path and app.host in (host, f"{host}:{request.port}"):
            return app
    return None


def username(request: http.Request, field: str) -> str:
    """The account name from a urlencoded or multipart form, or a JSON body ("a.b" nests)."""
    if request.raw_content is None:  # streamed (a login form never is): nothing held to read
        return ""
    kind = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    try:
        if kind == "application/x-www-form-urlencoded":
            return request.urlencoded_form.get(field, "")
        if kind == "multipart/form-data":
            value = request.multipart_form.get(field.encode(), b"")
            return value.decode("utf-8", "replace")
        if kind == "application/json" or kind.endswith("+json"):
            value = json.loads(request.get_text(strict=False) or "null")
            for step in field.split("."):
                value = value.get(step) if isinstance(value, dict) else None
            return value if isinstance(value, str) else ""
    except (ValueError, UnicodeDecodeError):
        return ""
    return ""


def login_failed(sign: FailureSign, response: http.Response) -> bool | None:
    """True for a failed login, False for a success, None when the response tells neither
    (a server error, or a body the proxy streamed and never held)."""
    if response.status_code >= 500:
        return None
    if sign.kind == "status":
        return response.status_code in sign.statuses
    if sign.kind == "redirect":
        location = response.headers.get("Location", "")
        return 300 <= response.status_code < 400 and sign.location in location
    text = response.get_text(strict=False) if response.raw_content is not None else None
    if text is None:
        return None
    return sign.marker in text


def _peer(flow: http.HTTPFlow) -> str:
    return flow.client_conn.peername[0] if flow.client_conn.peername else ""


def _accept(flow: http.HTTPFlow) -> str:
    return flow.request.headers.get("Accept", "")
