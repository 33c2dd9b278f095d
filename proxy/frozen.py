"""The answers for held logins: the "frozen" page (403) and the proxy's 407.

Neither names the account, the address or why (no personal data, and nothing
a guesser can use): the page says the login is held by the security team and
whom to contact. Chinese and English, or JSON for API clients.
"""

from __future__ import annotations

import html
import json

from mitmproxy import http

from proxy.blockpage import FROZEN_STATUS, wants_json

REALM = "leakguard"

_FROZEN = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>账号已冻结 · Account frozen — leakguard</title>
<style>body{{font-family:system-ui,"PingFang SC","Microsoft YaHei",sans-serif;max-width:46rem;
margin:3rem auto;padding:0 1rem;color:#222}} h1{{color:#b00020;font-size:1.5rem}}</style>
</head><body>
<h1>账号已冻结 · This account is frozen</h1>
<p>因登录异常，安全网关已暂停此账号或此地址的访问，直至信息安全部核实后解除。<br>
After unusual logins the security gateway has held this account or address until the
security team has looked into it and releases it.</p>
<p>请联系{contact}。<br>Please contact {contact}.</p>
<p style="color:#666;font-size:.85rem">leakguard</p>
</body></html>
"""

_LOGIN = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>需要登录 · Login required</title></head>
<body><h1>需要登录代理 · Proxy login required</h1>
<p>请使用公司账号登录。多次登录失败会冻结账号；如无法登录，请联系{contact}。<br>
Log in with your firm account. Repeated failures freeze the account; if you cannot log in,
contact {contact}.</p></body></html>
"""


def frozen_response(contact: str, accept: str = "") -> http.Response:
    if wants_json(accept):
        body = {"frozen": True, "message": "account or address held by the security team",
                "contact": contact}  # fmt: skip
        return http.Response.make(
            FROZEN_STATUS,
            json.dumps(body, ensure_ascii=False).encode(),
            {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"},
        )
    return http.Response.make(
        FROZEN_STATUS,
        _FROZEN.format(contact=html.escape(contact)).encode(),
        {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
    )


def login_required_response(contact: str) -> http.Response:
    return http.Response.make(
        407,
        _LOGIN.format(contact=html.escape(contact)).encode(),
        {
            "Proxy-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"',
            "Content-Type": "text/html; charset=utf-8",
            "Cache-Control": "no-store",
        },
    )
