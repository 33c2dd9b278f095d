"""The embedded local mail sink: where `make run` delivers when no smarthost is configured.

A tiny aiosmtpd server that keeps every message it receives as files:

    <state>/sink/<name>.eml    the message exactly as received
    <state>/sink/<name>.json   its envelope: {"mail_from", "rcpt_tos", "received"}

so a first run shows what the relay would have sent without mailing anyone.
Files appear whole (written beside, then renamed); the .json is renamed
before the .eml, so an .eml always has its envelope. `read_messages(dir)`
reads them back (tests, `ls var/sink`). Not a mailbox: nothing is ever sent
on from here.

    python -m mailrelay.sink --dir var/sink --listen 127.0.0.1:2526
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from aiosmtpd.smtp import SMTP

STORED = "250 2.0.0 Ok: stored as {name}"
SINK_HOSTNAME = "leakguard-sink"


@dataclass(frozen=True)
class SinkMessage:
    name: str
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    received: float


class SinkHandler:
    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.count = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        mail_from = "" if envelope.mail_from == "<>" else envelope.mail_from
        name = await asyncio.to_thread(
            store_message,
            self.directory,
            mail_from,
            list(envelope.rcpt_tos),
            envelope.original_content or b"",
        )
        self.count += 1
        return STORED.format(name=name)


def store_message(directory: Path, mail_from: str, rcpt_tos: list[str], data: bytes) -> str:
    now = time.time()
    name = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}-{secrets.token_hex(4)}"
    meta = {"mail_from": mail_from, "rcpt_tos": rcpt_tos, "received": now}
    for suffix, content in ((".json", json.dumps(meta).encode()), (".eml", data)):
        tmp = directory / f".{name}{suffix}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.rename(tmp, directory / f"{name}{suffix}")
    return name


def read_messages(directory: str | os.PathLike) -> list[SinkMessage]:
    """Everything the sink holds, oldest first."""
    out = []
    directory = Path(directory)
    if not directory.exists():
        return out
    for eml in sorted(directory.glob("*.eml")):
        try:
            meta = json.loads(eml.with_suffix(".json").read_bytes())
            data = eml.read_bytes()
        except (FileNotFoundError, ValueError):
            continue
        out.append(
            SinkMessage(
                eml.stem, meta["mail_from"], tuple(meta["rcpt_tos"]), data, meta["received"]
            )
        )
    return out


class Sink:
    """The sink as a server in the running event loop."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.handler = SinkHandler(directory)
        self.server: asyncio.AbstractServer | None = None
        self.address: tuple[str, int] = ("", 0)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: SMTP(
                self.handler,
                hostname=SINK_HOSTNAME,
                enable_SMTPUTF8=True,
                data_size_limit=None,
                loop=loop,
            ),
            host,
            port,
        )
        self.address = self.server.sockets[0].getsockname()[:2]
        return self.address

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), 2)
            self.server = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mailrelay.sink")
    parser.add_argument("--dir", default="var/sink")
    parser.add_argument("--listen", default="127.0.0.1:2526")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")

    async def run() -> None:
        sink = Sink(args.dir)
        address = await sink.start(host.strip("[]"), int(port))
        print(f"mail sink: listening on {address[0]}:{address[1]}, storing in {args.dir}")
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
