"""Alerts as JSON POSTs to a webhook (a SOAR, a chat bridge, a ticketing system).

The body is the alert dict; any 2xx answer is delivery, anything else (a
status, a timeout, a refused connection) raises and the alert sink worker
retries with backoff (`retries` further attempts). Only the URL's scheme and
host appear in logs: its path or query may hold a token.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import urlsplit


class WebhookError(Exception):
    pass


def safe_url(url: str) -> str:
    """The URL as logs may show it: scheme and host, no path, query or credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}" + (f":{parts.port}" if parts.port else "")


def check_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{safe_url(url)!r} is not an http:// or https:// URL")
    return url.strip()


class WebhookSink:
    def __init__(self, url: str, *, timeout: float = 10.0, retries: int = 3) -> None:
        self.url = check_url(url)
        self.timeout = timeout
        self.retries = retries
        self.name = f"webhook {safe_url(url)}"
        # Straight to the webhook: never through an HTTP_PROXY (it may be this gateway).
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def deliver(self, alert: dict) -> None:
        request = urllib.request.Request(
            self.url,
            data=json.dumps(alert, ensure_ascii=False).encode(),
            headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "leakguard"},
            method="POST",
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                answer.read()
        except urllib.error.HTTPError as err:
            raise WebhookError(f"answered {err.code}") from None
        except urllib.error.URLError as err:
            raise WebhookError(f"unreachable ({err.reason})") from None

    def close(self) -> None:
        pass
