"""`leakguard report` as a subprocess against a real SQLite record in a state directory."""

from __future__ import annotations

import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from audit.events import Event
from audit.open import open_store
from audit.store import Hold
from gateway.config import Config

ROOT = Path(__file__).resolve().parents[2]
ID, ID_MASKED = "11010519491231002X", "110105********002X"  # generated: GB 11643 check
PHONE = "13912345678"


def ago(**delta) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat(timespec="milliseconds")


def finding(cls: str, kind: str, masked: str) -> dict:
    return {"type": kind, "class": cls, "masked": masked, "hash": masked, "location": "body"}


@pytest.fixture
def state(tmp_path: Path) -> Path:
    directory = tmp_path / "var"
    store = open_store(Config(), directory)
    identity = finding("identity", "cn_resident_id", ID_MASKED)
    contact = finding("contact", "cn_mobile", "139****5678")
    for e in (
        Event(time=ago(days=40), type="http.request", channel="https", action="block",
              findings=(identity,), incident="LG-OLD"),
        Event(time=ago(days=3), type="http.request", channel="https", action="block",
              findings=(identity,), incident="LG-A", user="alice", destination="mail.qq.com",
              detail=f"leaked {ID}"),
        Event(time=ago(days=2), type="smtp.message", channel="smtp", action="encrypt",
              party="lawfirm", findings=(identity, contact), incident="LG-B"),
        Event(time=ago(days=1), type="smtp.message", channel="smtp", action="allow",
              party="lawfirm", reason=f"phone {PHONE}"),
        Event(time=ago(hours=2), type="login.anomaly", user="dave", source_ip="203.0.113.9",
              reason="login from the external zone"),
    ):  # fmt: skip
        store.append(e.to_dict())
    store.put_hold(Hold("account", "bob", "5 wrong passwords", since=datetime.now().timestamp()))
    store.close()
    return directory


def leakguard(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


class Tables(HTMLParser):
    """Every table row as its cells' text, and the count of <svg> elements."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.svgs = 0
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "svg":
            self.svgs += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def row(self, first: str) -> list[str]:
        (found,) = [r for r in self.rows if r and r[0] == first]
        return found


def test_report_writes_one_page_with_the_period_figures(state, tmp_path):
    out = tmp_path / "report.html"
    done = leakguard(
        "report", "--state-dir", str(state), "--since", "30d", "--out", str(out),
        "--title", "某某资产管理有限公司 信息安全月报",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{out} — 3 transfer(s), 1 blocked, 1 account(s) frozen" in done.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    html = out.read_text(encoding="utf-8")
    page = Tables(html)
    assert page.svgs == 4
    # columns: name, blocked, held, masked, encrypted, delivered, total
    assert page.row("身份信息 Identity")[1:] == ["1", "0", "0", "1", "0", "2"]
    assert page.row("联系方式 Contact")[1:] == ["0", "0", "0", "1", "0", "1"]
    assert page.row("lawfirm")[1:] == ["0", "0", "0", "1", "1", "2"]
    assert page.row("邮件 Mail (SMTP)")[1:] == ["0", "0", "0", "1", "1", "2"]
    (held,) = [r for r in page.rows if "LG-A" in r]  # the latest blocked or held transfers
    assert held[2:] == [
        "alice",
        "https",
        "mail.qq.com",
        "身份信息 Identity",
        "1",
        "",
        "已阻止 Blocked",
    ]
    assert page.row("异常登录 Login anomalies") == ["异常登录 Login anomalies", "1"]
    assert page.row("bob")[3] == "5 wrong passwords"
    assert "某某资产管理有限公司 信息安全月报" in html
    assert ID not in html and PHONE not in html


def test_party_narrows_the_report(state, tmp_path):
    out = tmp_path / "lawfirm.html"
    done = leakguard(
        "report", "--state-dir", str(state), "--since", "30d", "--out", str(out),
        "--party", "lawfirm",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2 transfer(s), 0 blocked" in done.stdout
    assert "第三方 Party: lawfirm" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--since", "last month"], "'last month' is not a time"),
        (["--since", "1d", "--until", "2d"], "--since 1d is not before --until 2d"),
        (["--since", "7d", "--out", "/nonexistent-dir/r.html"], "does not exist"),
    ],
)
def test_bad_arguments_exit_2_and_write_nothing(state, tmp_path, argv, message):
    out = tmp_path / "r.html"
    if "--out" not in argv:
        argv = [*argv, "--out", str(out)]
    done = leakguard("report", "--state-dir", str(state), *argv)
    assert done.returncode == 2
    assert done.stderr.startswith("leakguard report: ") and message in done.stderr
    assert not out.exists()


def test_no_record_is_an_error(tmp_path):
    out = tmp_path / "r.html"
    done = leakguard(
        "report", "--state-dir", str(tmp_path / "x"), "--since", "7d", "--out", str(out)
    )
    assert done.returncode == 2 and "no audit record in" in done.stderr
    assert not out.exists()


def test_since_is_required(tmp_path):
    done = leakguard("report", "--state-dir", str(tmp_path), "--out", str(tmp_path / "r.html"))
    assert done.returncode == 2 and "--since" in done.stderr
