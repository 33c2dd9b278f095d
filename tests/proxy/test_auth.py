"""Proxy authentication through `leakguard run` (proxy.users_file): 407, the login watcher,
the "frozen" page. Real httpx clients, a real origin on loopback, the real accounts CLI.

One gateway for the module; each test uses its own accounts.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import time

import httpx
import pytest

from mailrelay import auth
from tests.support.gateway import ROOT, running_gateway
from tests.support.origin import Origin, TestCA

PASSWORD = "correct horse battery staple"
CONTACT = "security@firm.example"
ACCOUNTS = ("alice", "bob", "carol", "dave", "erin")
WATCH = "version: 1\nlogins:\n  failures: {count: 3, within: 10m}\n"


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("proxy-auth")
    policy = tmp / "policy"
    shutil.copytree(ROOT / "rules" / "default", policy)
    (policy / "watch.yaml").write_text(WATCH)
    users = tmp / "users"
    for name in ACCOUNTS:
        auth.set_user(users, name, PASSWORD)
    config = tmp / "leakguard.yaml"
    ca = TestCA(tmp / "origin-ca")
    config.write_text(
        f"version: 1\npolicy: {policy}\ncontact: {CONTACT}\n"
        f"proxy:\n  users_file: {users}\n  upstream_ca: {ca.pem_path}\n"
    )
    tls = ca.server_context(["secure.firm.example", "127.0.0.1"])
    with (
        Origin("127.0.0.1") as web,
        Origin("127.0.0.1", tls=tls) as secure,
        running_gateway(
            "--config", str(config), "--no-relay", "--resolve", "secure.firm.example=127.0.0.1",
            state_dir=tmp / "var",
        ) as gw,
    ):  # fmt: skip
        yield gw, web, secure


def client(gw, account: str | None = None, password: str = PASSWORD) -> httpx.Client:
    host, port = gw.address
    proxy = f"http://{account}:{password}@{host}:{port}" if account else gw.proxy_url
    trust = ssl.create_default_context(cafile=str(gw.ca_path))
    return httpx.Client(proxy=proxy, verify=trust, timeout=15, trust_env=False)


def leakguard(gw, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args, "--state-dir", str(gw.state_dir)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "SUDO_USER": "secadmin"},
    )  # fmt: skip


def test_no_credentials_get_a_407_and_reach_nothing(rig) -> None:
    gw, web, _ = rig
    before = len(web.requests)
    with client(gw) as c:
        resp = c.get(web.url("/report"))
    assert resp.status_code == 407
    assert resp.headers["Proxy-Authenticate"].startswith('Basic realm="leakguard"')
    assert CONTACT in resp.text
    assert len(web.requests) == before


def test_a_login_is_recorded_and_the_credentials_stay_at_the_proxy(rig) -> None:
    gw, web, _ = rig
    with client(gw, "alice") as c:
        assert c.get(web.url("/one")).status_code == 200
        assert c.get(web.url("/two")).status_code == 200
    [received] = [r for r in web.requests if r.path == "/two"]
    assert received.header("Proxy-Authorization") is None
    success = gw.wait_for_event(lambda e: e["type"] == "login.success" and e["user"] == "alice")
    assert success["channel"] == "proxy" and success["source_zone"] == "office"
    # one password check per connection, not one per request
    logins = [e for e in gw.events() if e["type"] == "login.success" and e["user"] == "alice"]
    assert len(logins) == 1


def test_https_tunnels_need_a_login_too(rig) -> None:
    gw, _, secure = rig
    url = f"https://secure.firm.example:{secure.port}/x"
    with client(gw) as c, pytest.raises(httpx.ProxyError, match="407"):
        c.get(url)
    with client(gw, "erin") as c:
        assert c.get(url).status_code == 200


def test_brute_force_freezes_and_the_right_password_gets_the_same_407(rig) -> None:
    gw, web, _ = rig
    for i in range(3):
        with client(gw, "bob", f"guess {i}") as c:
            assert c.get(web.url("/")).status_code == 407
    frozen = gw.wait_for_event(lambda e: e["type"] == "account.frozen" and e["user"] == "bob")
    assert frozen["channel"] == "proxy"
    with client(gw, "bob") as c:
        assert c.get(web.url("/")).status_code == 407  # nothing tells a guesser it is frozen
    assert leakguard(gw, "accounts", "unfreeze", "bob").returncode == 0
    with client(gw, "bob") as c:
        assert c.get(web.url("/")).status_code == 200
    assert "guess 1" not in gw.events_file_text()


def test_a_session_frozen_by_an_administrator_gets_the_frozen_page(rig) -> None:
    gw, web, _ = rig
    with client(gw, "carol") as c:
        assert c.get(web.url("/before")).status_code == 200
        frozen = leakguard(gw, "accounts", "freeze", "carol", "--reason", "lost laptop")
        assert frozen.returncode == 0, frozen.stderr
        time.sleep(1.2)  # the proxy reuses a "not frozen" answer for a second
        page = c.get(web.url("/after"))
        api = c.get(web.url("/api"), headers={"Accept": "application/json"})
    assert page.status_code == 403 and "账号已冻结" in page.text and CONTACT in page.text
    assert "carol" not in page.text and "lost laptop" not in page.text
    assert api.status_code == 403 and json.loads(api.text)["frozen"] is True
    assert not [r for r in web.requests if r.path in ("/after", "/api")]
    assert leakguard(gw, "accounts", "unfreeze", "carol").returncode == 0


def test_what_a_logged_in_account_sends_is_recorded_under_its_name(rig) -> None:
    gw, web, _ = rig
    body = "客户身份证 11010519491231002X".encode()
    with client(gw, "dave") as c:
        assert c.post(web.url("/upload"), content=body).status_code == 200
    event = gw.wait_for_event(
        lambda e: e["type"] == "http.request" and e["findings"] and e["user"] == "dave"
    )
    assert event["findings"][0]["masked"] != "11010519491231002X"
    assert "11010519491231002X" not in gw.events_file_text()
