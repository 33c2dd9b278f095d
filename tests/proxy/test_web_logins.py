"""Web-application logins watched by the proxy: a real login application on loopback behind
`leakguard run`, and the parsing of forms and failure signs on mitmproxy's test flows."""

from __future__ import annotations

import json
import shutil
import ssl
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from mitmproxy.test import tutils

from audit.watch_settings import FailureSign
from proxy.web_logins import login_failed, username
from tests.support.gateway import ROOT, running_gateway

PASSWORD = "correct horse battery staple"
CONTACT = "security@firm.example"
REDIRECT = FailureSign("redirect", location="error=")


class LoginApp(ThreadingHTTPServer):
    """POST /login (form or JSON): 401 for a wrong password, 302 with a session cookie else."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _LoginHandler)
        self.attempts: list[str] = []  # account names that reached the application
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    def __enter__(self) -> LoginApp:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


class _LoginHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            form = json.loads(body)
        else:
            form = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
        self.server.attempts.append(form.get("user", ""))
        if form.get("password") == PASSWORD:
            self.send_response(302)
            self.send_header("Location", "/home")
            self.send_header("Set-Cookie", "session=s3cr3t; HttpOnly")
        else:
            self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web-logins")
    with LoginApp() as app:
        port = app.server_address[1]
        policy = tmp / "policy"
        shutil.copytree(ROOT / "rules" / "default", policy)
        (policy / "watch.yaml").write_text(
            "version: 1\n"
            "logins:\n"
            "  failures: {count: 3, within: 10m}\n"
            "  web_apps:\n"
            "    oa:\n"
            f"      host: oa.firm.example:{port}\n"
            "      path: /login\n"
            "      username_field: user\n"
            "      failure: {status: [401]}\n"
        )
        config = tmp / "leakguard.yaml"
        config.write_text(f"version: 1\npolicy: {policy}\ncontact: {CONTACT}\n")
        with running_gateway(
            "--config", str(config), "--no-relay", "--resolve", "oa.firm.example=127.0.0.1",
            state_dir=tmp / "var",
        ) as gw:  # fmt: skip
            yield gw, app, f"http://oa.firm.example:{port}/login"


def client(gw) -> httpx.Client:
    trust = ssl.create_default_context(cafile=str(gw.ca_path))
    return httpx.Client(proxy=gw.proxy_url, verify=trust, timeout=15, trust_env=False)


def test_failures_freeze_the_account_and_the_app_no_longer_sees_it(rig) -> None:
    gw, app, url = rig
    with client(gw) as c:
        assert c.post(url, data={"user": "alice", "password": PASSWORD}).status_code == 302
        for i in range(3):
            resp = c.post(url, data={"user": "Alice", "password": f"guess {i}"})
            assert resp.status_code == 401  # the application's own answer
        frozen = gw.wait_for_event(lambda e: e["type"] == "account.frozen" and e["user"] == "alice")
        seen = len(app.attempts)
        resp = c.post(url, data={"user": "alice", "password": PASSWORD})
    assert resp.status_code == 403 and "账号已冻结" in resp.text and CONTACT in resp.text
    assert "session" not in resp.headers.get("Set-Cookie", "")
    assert len(app.attempts) == seen  # refused at the proxy
    assert frozen["channel"] == "web" and frozen["source_zone"] == "office"
    kinds = [
        (e["type"], e["reason"]) for e in gw.events()
        if e["user"] == "alice" and e["type"].startswith("login.")
    ]  # fmt: skip
    assert kinds == [
        ("login.success", ""),
        *[("login.failure", "wrong login or password")] * 3,
        ("login.failure", "account frozen"),
    ]
    assert PASSWORD not in gw.events_file_text() and "guess 0" not in gw.events_file_text()


def test_a_json_login_is_watched_too(rig) -> None:
    gw, _, url = rig
    with client(gw) as c:
        assert c.post(url, json={"user": "bob", "password": "nope"}).status_code == 401
    event = gw.wait_for_event(lambda e: e["type"] == "login.failure" and e["user"] == "bob")
    assert event["channel"] == "web"


def test_other_paths_and_methods_are_not_logins(rig) -> None:
    gw, _, url = rig
    with client(gw) as c:
        c.get(url)
        c.post(url.replace("/login", "/logout"), data={"user": "carol"})
    assert not [e for e in gw.events() if e["user"] == "carol"]


# -- the parsing, on mitmproxy's test requests and responses -----------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "field", "expected"),
    [
        ("application/x-www-form-urlencoded", b"user=alice&password=x", "user", "alice"),
        ("application/x-www-form-urlencoded; charset=utf-8", b"u=%E5%BC%A0", "u", "张"),
        ("application/json", b'{"auth": {"email": "a@firm.cn"}}', "auth.email", "a@firm.cn"),
        ("application/json", b'{"user": 7}', "user", ""),
        ("application/json", b"not json", "user", ""),
        ("text/plain", b"user=alice", "user", ""),
        (
            "multipart/form-data; boundary=xx",
            b'--xx\r\nContent-Disposition: form-data; name="user"\r\n\r\nbob\r\n--xx--\r\n',
            "user",
            "bob",
        ),
    ],
)  # fmt: skip
def test_username_from_the_body(content_type, body, field, expected) -> None:
    request = tutils.treq(method=b"POST", content=body)
    request.headers["Content-Type"] = content_type
    assert username(request, field) == expected


@pytest.mark.parametrize(
    ("sign", "status", "headers", "body", "failed"),
    [  # (sign, status, headers, body, failed?)
        (FailureSign("status", (401, 403)), 401, {}, b"", True),
        (FailureSign("status", (401, 403)), 200, {}, b"", False),
        (REDIRECT, 302, {"Location": "/login?error=1"}, b"", True),
        (REDIRECT, 302, {"Location": "/home"}, b"", False),
        (REDIRECT, 200, {}, b"", False),
        (FailureSign("body", marker="密码错误"), 200, {}, "用户名或密码错误".encode(), True),
        (FailureSign("body", marker="密码错误"), 200, {}, b"welcome", False),
        (FailureSign("status", (401,)), 502, {}, b"", None),  # the app is down: neither
    ],
)  # fmt: skip
def test_failure_signs(sign, status, headers, body, failed) -> None:
    response = tutils.tresp(status_code=status, content=body)
    response.headers.update(headers)
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    assert login_failed(sign, response) is failed


def test_a_body_the_proxy_did_not_hold_names_nobody() -> None:
    request = tutils.treq(method=b"POST", content=None)
    request.headers["Content-Type"] = "application/x-www-form-urlencoded"
    assert username(request, "user") == ""
