"""The page a user sees when a request is held back: Chinese and English, or JSON.

Everything shown comes from the Verdict — masked values, the rule, the
reason — plus an incident id the user can quote to the security team.
Every dynamic string is HTML-escaped: a host or file name is attacker text.
"""

from __future__ import annotations

import html
import json

from mitmproxy import http

from rules.policy import Verdict

STATUS = 403
FROZEN_STATUS = 403

_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>已阻止 · Blocked — leakguard</title>
<style>
body{{font-family:system-ui,"PingFang SC","Microsoft YaHei",sans-serif;max-width:46rem;
margin:3rem auto;padding:0 1rem;color:#222}}
h1{{color:#b00020;font-size:1.5rem}} table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;font-size:.9rem}}
code{{background:#f4f4f4;padding:0 .2rem}} .muted{{color:#666;font-size:.85rem}}
</style></head><body>
<h1>已阻止此次传输 · This transfer was blocked</h1>
<p>{message}</p>
<p>根据公司数据保护策略，此内容不能发送到 <code>{destination}</code>。<br>
Under the firm's data-protection policy this content cannot be sent to
<code>{destination}</code>.</p>
<table>
<tr><th>事件编号 Incident</th><td><code>{incident}</code></td></tr>
<tr><th>规则 Rule</th><td><code>{rule}</code></td></tr>
<tr><th>原因 Reason</th><td>{reason}</td></tr>
</table>
{findings}
<p>如认为有误，请联系{contact}并提供事件编号。<br>
If you believe this is a mistake, contact {contact} and quote the incident id.</p>
<p class="muted">leakguard</p>
</body></html>
"""

_FINDINGS = """<h2 style="font-size:1.1rem">发现的敏感信息（已脱敏） · What was found (masked)</h2>
<table><tr><th>类型 Type</th><th>位置 Where</th><th>值 Value</th></tr>{rows}</table>
"""
MAX_ROWS = 20


def wants_json(accept: str) -> bool:
    """API clients (fetch/XHR asking for JSON) get JSON; browsers get the page."""
    accept = accept.lower()
    return "application/json" in accept and "text/html" not in accept


def render(verdict: Verdict, incident: str, contact: str, as_json: bool) -> tuple[str, bytes]:
    """(content type, body) for a verdict that holds the request back."""
    destination = verdict.place.destination or "this destination"
    if as_json:
        body = {
            "blocked": True,
            "incident": incident,
            "rule": verdict.rule,
            "reason": verdict.reason,
            "message": verdict.message,
            "destination": destination,
            "findings": [
                {"type": f.detector, "location": f.location, "masked": f.masked}
                for f in verdict.findings[:MAX_ROWS]
            ],
            "contact": contact,
        }
        return "application/json; charset=utf-8", json.dumps(body, ensure_ascii=False).encode()
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(f.detector)}</td><td>{e(f.location)}</td><td><code>{e(f.masked)}</code>"
        "</td></tr>"
        for f in verdict.findings[:MAX_ROWS]
    )
    if len(verdict.findings) > MAX_ROWS:
        rows += f"<tr><td colspan=3>… {len(verdict.findings) - MAX_ROWS} more</td></tr>"
    page = _PAGE.format(
        message=e(verdict.message),
        destination=e(destination),
        incident=e(incident),
        rule=e(verdict.rule),
        reason=e(verdict.reason),
        findings=_FINDINGS.format(rows=rows) if rows else "",
        contact=e(contact),
    )
    return "text/html; charset=utf-8", page.encode()


def block_response(
    verdict: Verdict, incident: str, contact: str, accept: str = ""
) -> http.Response:
    content_type, body = render(verdict, incident, contact, wants_json(accept))
    return http.Response.make(
        STATUS,
        body,
        {
            "Content-Type": content_type,
            "Cache-Control": "no-store",
            "X-Leakguard-Incident": incident,
            "X-Leakguard-Rule": verdict.rule,
            "Connection": "close",
        },
    )
