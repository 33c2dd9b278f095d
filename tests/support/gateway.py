"""`leakguard run` as a subprocess, for end-to-end tests.

    with running_gateway("--resolve", "mail.qq.com=127.0.0.2", state_dir=tmp) as gw:
        httpx.post(url, proxy=gw.proxy_url, verify=str(gw.ca_path), ...)
        gw.events()            # what STATE/events.jsonl holds now
        gw.wait_for_event(lambda e: e["type"] == "policy.reload")
        gw.reload()            # SIGHUP
    gw.returncode, gw.stdout, gw.stderr   # after the block: everything it printed

The gateway is started with `[sys.executable, "-m", "gateway.cli", "run",
"--state-dir", STATE, "--proxy-listen", LISTEN, *args]` (`listen` defaults to
127.0.0.1:0, an ephemeral port, and the relay's too unless `args` set it;
`listen=None` leaves both to the config file or the defaults), optionally
behind a `prefix` such as `["ip", "netns", "exec", "ns1"]` — the prefix must
exec the command (ip netns exec, nsenter, env do), since signals go to the
process started. Start-up waits for the "leakguard: ready" line and parses
every "proxy listening on HOST:PORT" line before it; a gateway that exits or
takes longer than `timeout` raises GatewayFailed with its stdout and stderr.
`stop()` (also on leaving the block) sends SIGTERM, waits, then kills the
process group.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READY = "leakguard: ready"
LISTENING = re.compile(r"^leakguard: proxy listening on (\[[^\]]+\]|[^\s:]+):(\d+) \((\w+) mode\)")
CA_LINE = re.compile(r"^leakguard: CA certificate: (.+)$")


class GatewayFailed(AssertionError):
    """The gateway did not start (or stop) as expected; the message holds its output."""


class Gateway:
    """A started `leakguard run` process. Use `running_gateway` rather than building one."""

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        state_dir: str | os.PathLike,
        prefix: Sequence[str] = (),
        listen: str | None = "127.0.0.1:0",
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike = ROOT,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.command = [
            *prefix,
            sys.executable,
            "-m",
            "gateway.cli",
            "run",
            "--state-dir",
            str(self.state_dir),
            *(("--proxy-listen", listen) if listen else ()),
            # the relay too gets an ephemeral port unless the test says otherwise, so
            # gateways started side by side never contend for 2525
            *(
                ("--relay-listen", "127.0.0.1:0")
                if listen and not {"--relay-listen", "--no-relay"} & set(args)
                else ()
            ),
            *args,
        ]
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.cwd = Path(cwd)
        self.addresses: list[tuple[str, int]] = []
        self.modes: list[str] = []
        self.ca_path: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._out: list[str] = []
        self._err: list[str] = []
        self._ready = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- start and stop --------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> Gateway:
        self.proc = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,  # its own process group: stop() can kill wrappers too
        )
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self._out, True)),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self._err, False)),
        ]
        for t in self._threads:
            t.daemon = True
            t.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None:
                self._join_pumps()
                raise GatewayFailed(self._report(f"exited with status {self.proc.returncode}"))
            if time.monotonic() > deadline:
                self._kill()
                raise GatewayFailed(self._report(f"not ready within {timeout:g} s"))
        if not self.addresses and "--no-proxy" not in self.command:
            self.stop()
            raise GatewayFailed(self._report("ready, but no 'proxy listening on' line"))
        return self

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait up to `timeout`, then SIGKILL the process group. Returns the status."""
        proc = self.proc
        if proc is None:
            return 0
        if proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill()
        self._kill_group()  # anything a prefix left behind
        self._join_pumps()
        return proc.returncode

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def reload(self) -> None:
        """SIGHUP: the gateway reloads its policy (watch for the `policy.reload` event)."""
        self.signal(signal.SIGHUP)

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    # -- where it is -----------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """The first listening address (host, port)."""
        return self.addresses[0]

    @property
    def host(self) -> str:
        return self.address[0]

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def proxy_url(self) -> str:
        """http://HOST:PORT of the first listening address (for httpx's `proxy=`)."""
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def events_path(self) -> Path:
        return self.state_dir / "events.jsonl"

    # -- what it did -----------------------------------------------------------------------

    @property
    def stdout(self) -> str:
        return "".join(self._out)

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    def events(self) -> list[dict]:
        """Every complete line of events.jsonl, parsed (a line being written is skipped)."""
        try:
            data = self.events_path.read_bytes()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")
        return [json.loads(line) for line in lines[:-1] if line.strip()]

    def events_file_text(self) -> str:
        try:
            return self.events_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""

    def wait_for_event(
        self,
        match: Callable[[dict], bool],
        timeout: float = 10.0,
        *,
        after: int = 0,
    ) -> dict:
        """The first event (from index `after`) that `match`es; GatewayFailed after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events()[after:]:
                if match(event):
                    return event
            if time.monotonic() > deadline:
                shown = "\n".join(json.dumps(e, ensure_ascii=False) for e in self.events()[-10:])
                raise GatewayFailed(
                    self._report(f"no matching event within {timeout:g} s; last events:\n{shown}")
                )
            if self.returncode is not None:
                raise GatewayFailed(self._report(f"exited with status {self.returncode}"))
            time.sleep(0.05)

    # -- internals -------------------------------------------------------------------------

    def _pump(self, stream, sink: list[str], parse: bool) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            sink.append(line)
            if not parse or self._ready.is_set():
                continue
            if m := LISTENING.match(line):
                self.addresses.append((m[1].strip("[]"), int(m[2])))
                self.modes.append(m[3])
            elif m := CA_LINE.match(line.rstrip("\n")):
                self.ca_path = self.ca_path or Path(m[1])
            elif line.startswith(READY):
                self._ready.set()
        stream.close()

    def _join_pumps(self) -> None:
        for t in self._threads:
            t.join(5)

    def _kill(self) -> None:
        assert self.proc is not None
        self._kill_group()
        if self.proc.poll() is None:
            self.proc.kill()
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    def _kill_group(self) -> None:
        assert self.proc is not None
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def _report(self, what: str) -> str:
        return (
            f"leakguard run {what}\n"
            f"command: {' '.join(self.command)}\n"
            f"--- stdout ---\n{self.stdout}"
            f"--- stderr ---\n{self.stderr}"
        )


@contextmanager
def running_gateway(
    *args: str,
    state_dir: str | os.PathLike,
    prefix: Sequence[str] = (),
    listen: str | None = "127.0.0.1:0",
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Iterator[Gateway]:
    """Start `leakguard run ARGS…`, yield it once ready, stop it on leaving."""
    gw = Gateway(args, state_dir=state_dir, prefix=prefix, listen=listen, env=env)
    gw.start(timeout)
    try:
        yield gw
    finally:
        gw.stop()


def run_gateway_once(
    *args: str,
    state_dir: str | os.PathLike,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`leakguard run ARGS…` expected to exit by itself (bad config, say)."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "run", "--state-dir", str(state_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdin=subprocess.DEVNULL,
    )
