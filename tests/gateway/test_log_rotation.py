"""logrotate without copytruncate: the files are moved away, SIGHUP makes the gateway open
them by name again (deploy/logrotate/leakguard's postrotate), and no line is lost."""

from __future__ import annotations

from tests.support.gateway import running_gateway


def test_sighup_reopens_events_jsonl_after_it_was_moved(tmp_path) -> None:
    state = tmp_path / "var"
    with running_gateway("--no-relay", state_dir=state) as gw:
        gw.reload()
        started = gw.wait_for_event(lambda e: e["type"] == "policy.reload")
        rotated = state / "events.jsonl.1"
        gw.events_path.rename(rotated)
        gw.reload()
        reloaded = gw.wait_for_event(lambda e: e["type"] == "policy.reload")  # the new file
    old = rotated.read_text(encoding="utf-8")
    assert started["id"] in old and reloaded["id"] not in old
    assert "reopening the log files failed" not in gw.stderr
