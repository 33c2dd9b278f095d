"""Proxy throughput: leakguard beside plain mitmproxy, same origin, same load, one run.

What is measured, in one run, through each of two proxies started as subprocesses:

- plain mitmproxy: `mitmdump -q` with no addons of ours and the options leakguard
  sets on its master (connection_strategy=lazy, stream_large_bodies=16m,
  onboarding off), a throwaway confdir;
- leakguard: `leakguard run --proxy-listen 127.0.0.1:0 --no-relay` with a fresh
  state directory and the shipped policy (or --policy DIR);

and, as a ceiling, straight to the origin with no proxy. The phases:

1. `GET 1 KiB`: keep-alive GETs answered with 1 KiB of JSON (requests/s);
2. `POST 1 KiB`: keep-alive POSTs of 1 KiB of ordinary JSON, no PII (requests/s);
3. `upload 1 MiB`: POSTs of 1 MiB JSON bodies (Chinese/English documents from
   bench/corpus_gen.py's "office" profile, a few values of PII each) (MB/s);
   below leakguard's stream_above, so buffered and judged in the request hook;
4. `upload 32 MiB`: the same kind of body, 32 MiB: above stream_above, so
   leakguard judges it as a stream, not in the request hook (MB/s; no goal).

The origin is an asyncio HTTP/1.1 server in its own process on 127.0.0.1,
which the shipped policy places in the office zone: uploads with PII are
allowed, so both proxies forward them, and leakguard records an event with
its findings for each (checked at the end: events.jsonl in its state dir).
The load generator is this process (asyncio, raw sockets, plain HTTP through
the explicit proxy, absolute-form requests; with --https, CONNECT and TLS, each
proxy intercepting with its own CA): `--connections` keep-alive connections
for the requests/s phases, `--upload-connections` for uploads.

How: every phase runs `--rounds` times; in each round the contenders take turns
in a rotating order (the machine has 2 noisy cores), each for `--seconds` after a
short warm-up on the same connections; every figure is the median over rounds.
Latency is per request (write to last response byte): p50/p99 of a round,
median over rounds. CPU ms/request is the proxy process's user+system time
(from /proc) over the requests it answered: less noisy than wall time. Peak RSS
during the uploads is the larger of VmHWM (reset through /proc/PID/clear_refs
before each upload run) and VmRSS sampled every 5 ms (the kernel updates
VmHWM lazily, so a freed peak can escape it). MB = 10^6 bytes of request
body. The goals of the issue (leakguard >= 85 % of plain mitmproxy's
requests/s, >= 70 % of its upload MB/s) are reported, never enforced. After the
load, the budget the upload goal leaves for inspecting 1 MiB (mitmproxy's CPU
per upload / 0.70, less that CPU) is printed beside what inspecting the same
bodies costs at least (bench/upload_scan.py --floors, in its own process).

    .venv/bin/python bench/proxy.py                    # ~4-5 minutes
    .venv/bin/python bench/proxy.py --https --no-big   # through TLS interception, ~3 minutes
    .venv/bin/python bench/proxy.py --quick            # smoke run, ~20 s
    .venv/bin/python bench/proxy.py --seconds 5 --rounds 7 --connections 16 --no-big
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import corpus_gen

HERE = Path(__file__).resolve().parent
MB = 1e6
KIB, MIB = 1024, 2**20
RPS_GOAL, UPLOAD_GOAL = 0.85, 0.70  # the issue: shares of plain mitmproxy's figures
STREAM_ABOVE = 16 * MIB  # leakguard's default proxy.stream_above; the baseline gets the same
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_1K = (
    json.dumps(
        {
            "items": [
                {"id": i, "title": f"会议纪要 第{i}期 meeting notes", "status": "已归档 archived"}
                for i in range(14)
            ]
        },
        ensure_ascii=False,
    )
    .encode()
    .ljust(KIB)[:KIB]
)


# -- the origin (run in its own process: `proxy.py --serve-origin`) -----------------


async def _read_body(reader: asyncio.StreamReader, head: bytes) -> int:
    """Read and discard the body announced by `head`; returns its size."""
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        left = length
        while left:
            data = await reader.read(min(left, 256 * KIB))
            if not data:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(data)
        return length
    total = 0
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return total
        total += size
        await reader.readexactly(size + 2)


async def _origin_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            received = await _read_body(reader, head)
            if head.startswith(b"GET "):
                body = PAGE_1K
            else:
                body = b'{"ok": true, "received": %d}' % received
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def _serve_origin(cert: str | None, key: str | None) -> None:
    tls = None
    if cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
    server = await asyncio.start_server(_origin_connection, HOST, 0, backlog=512, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    print(f"origin listening on {HOST}:{port}", flush=True)
    async with server:
        await server.serve_forever()


# -- the load generator (this process) -----------------------------------------------


@dataclass(frozen=True)
class Request:
    data: bytes  # the whole request: head and body
    body_size: int


@dataclass
class Run:
    """One contender, one phase, one round."""

    seconds: float = 0.0  # from the window's start to the last counted response
    completed: int = 0  # 200s to requests sent inside the window
    answered: int = 0  # every 200 (warm-up included)
    body_bytes: int = 0  # request body bytes of `completed`
    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    cpu: float = 0.0  # the proxy's CPU seconds over the whole run (warm-up included)
    peak_rss: int = 0  # bytes: the proxy's peak RSS during the run (upload phases)

    @property
    def rps(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    @property
    def mbps(self) -> float:
        return self.body_bytes / MB / self.seconds if self.seconds else 0.0

    def quantile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(q * len(data)))]


class Clock:
    """Warm-up until `warm_until`; the window opens when every connection is warm.

    Requests sent inside the window count, until their response (so a slow one
    at the end is waited for, not lost); none is in flight when it opens."""

    def __init__(self, connections: int, warmup: float, seconds: float) -> None:
        self.waiting = connections
        self.warm_until = time.perf_counter() + warmup
        self.seconds = seconds
        self.start = self.end = 0.0
        self.go = asyncio.Event()

    async def warm(self) -> None:
        self.waiting -= 1
        if self.waiting == 0:
            self.start = time.perf_counter()
            self.end = self.start + self.seconds
            self.go.set()
        await self.go.wait()


@dataclass(frozen=True)
class Target:
    """Where the load goes: a proxy (`tunnel`: the origin, for CONNECT when `tls`) or the
    origin itself; `tls` trusts whoever presents the certificate (proxy CA or origin CA)."""

    address: tuple[str, int]
    tls: ssl.SSLContext | None = None
    tunnel: tuple[str, int] | None = None

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(*self.address, limit=MIB)
        if self.tls is None:
            return reader, writer
        if self.tunnel is not None:
            authority = f"{self.tunnel[0]}:{self.tunnel[1]}"
            writer.write(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            if int(head.split(b" ", 2)[1]) != 200:
                writer.close()
                raise ConnectionRefusedError(f"CONNECT refused: {head[:40]!r}")
        await writer.start_tls(self.tls, server_hostname=HOST)
        return reader, writer


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    await _read_body(reader, head)
    return status


async def _worker(
    target: Target, requests: list[Request], offset: int, clock: Clock, run: Run
) -> None:
    writer = None
    i = offset
    warm = True
    while True:
        now = time.perf_counter()
        if warm and now >= clock.warm_until:
            await clock.warm()
            warm, now = False, time.perf_counter()
        if not warm and now >= clock.end:
            break
        try:
            if writer is None:
                reader, writer = await target.connect()
            request = requests[i % len(requests)]
            i += 1
            t0 = time.perf_counter()
            writer.write(request.data)
            await writer.drain()
            status = await _read_response(reader)
            t1 = time.perf_counter()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            # ssl.SSLError is an OSError
            run.errors[type(e).__name__] += 1
            if writer is not None:
                writer.close()
                writer = None
            await asyncio.sleep(0.05)
            continue
        if status != 200:
            run.errors[f"HTTP {status}"] += 1
            continue
        run.answered += 1
        if not warm:
            run.completed += 1
            run.body_bytes += request.body_size
            run.latencies.append(t1 - t0)
            run.seconds = max(run.seconds, t1 - clock.start)
    if writer is not None:
        writer.close()


def load(
    target: Target,
    requests: list[Request],
    connections: int,
    seconds: float,
    warmup: float,
) -> Run:
    """`connections` keep-alive connections: warm-up, then a window of `seconds`."""
    run = Run()

    async def main() -> None:
        clock = Clock(connections, warmup, seconds)
        await asyncio.gather(
            *(_worker(target, requests, k, clock, run) for k in range(connections))
        )

    asyncio.run(main())
    return run


# -- request bodies -------------------------------------------------------------------


def json_body(size: int, seed: int, first_doc: int) -> tuple[bytes, Counter, int]:
    """A JSON upload of exactly `size` bytes: office-profile documents as attachments.

    Returns (body, values planted (approximately: the last document is cut), next doc)."""
    envelope = {
        "case": f"CASE-2024-{seed:03d}{first_doc:05d}",
        "uploaded_by": "办公室 office",
        "note": "季度归档 quarterly archive",
        "attachments": [],
    }
    planted: Counter = Counter()
    total, index = 0, first_doc
    while total < size:
        doc = corpus_gen.document(seed, index, "office")
        envelope["attachments"].append({"name": f"{doc.kind}-{index}.txt", "text": doc.text})
        planted += doc.planted
        total += doc.size + 40
        index += 1
    # every attachment but the last, then the last one's text cut to fit exactly
    last = envelope["attachments"][-1]
    text, last["text"] = last["text"], "\0"
    head, tail = json.dumps(envelope, ensure_ascii=False).encode().split(b'"\\u0000"')

    def encoded(n: int) -> bytes:
        return json.dumps(text[:n], ensure_ascii=False).encode()

    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(head) + len(encoded(mid)) + len(tail) <= size:
            lo = mid
        else:
            hi = mid - 1
    body = head + encoded(lo) + tail
    return body + b" " * (size - len(body)), planted, index


def small_post_body() -> bytes:
    text = (
        "本周例会纪要：讨论第三季度预算、供应商合同续签与办公室搬迁安排。"
        "Weekly notes: Q3 budget, vendor renewals and the office move. "
    ) * 20
    head = b'{"action": "save_draft", "folder": "meetings", "text": "'
    body = head + text.encode()
    body = body[: KIB - 2].decode("utf-8", "ignore").encode()
    return (body + b'"}').ljust(KIB)


def build_requests(
    method: str, path: str, bodies: list[bytes], origin: tuple[str, int], absolute: bool
) -> list[Request]:
    """`absolute`: plain HTTP through the proxy (absolute-form); else origin-form, as
    straight to the origin or inside a CONNECT tunnel."""
    host = f"{origin[0]}:{origin[1]}"
    target = f"http://{host}{path}" if absolute else path
    out = []
    for body in bodies or [b""]:
        head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: lg-bench\r\n"
        if method != "GET":
            head += "Content-Type: application/json; charset=utf-8\r\n"
            head += f"Content-Length: {len(body)}\r\n"
        out.append(Request(head.encode() + b"\r\n" + body, len(body)))
    return out


# -- processes ------------------------------------------------------------------------


def origin_certificate(workdir: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and the origin's certificate for 127.0.0.1: (CA, cert, key) files."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key, issuer: str, signer, ca: bool) -> x509.Certificate:
        usage = dict.fromkeys(
            ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement"),
            False,
        )
        usage.update(encipher_only=False, decipher_only=False)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca, **usage),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                critical=False,
            )
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))])
            builder = builder.add_extension(san, critical=False).add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert("lg-bench origin CA", ca_key, "lg-bench origin CA", ca_key, True)
    leaf = cert(HOST, key, "lg-bench origin CA", ca_key, False)
    paths = workdir / "origin-ca.pem", workdir / "origin.pem", workdir / "origin.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def client_tls(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def venv_tool(name: str, module_args: list[str]) -> list[str]:
    """The console script beside this interpreter, else `python <module_args>`."""
    script = Path(sys.executable).with_name(name)
    return [str(script)] if script.exists() else [sys.executable, *module_args]


class Process:
    """A subprocess in its own session; stdout and stderr go to files in `workdir`."""

    def __init__(self, name: str, command: list[str], workdir: Path) -> None:
        self.name = name
        self.command = command
        self.workdir = workdir
        self.stdout = workdir / f"{name}.out"
        self.stderr = workdir / f"{name}.err"
        self.proc: subprocess.Popen | None = None
        self.address: tuple[str, int] = (HOST, 0)
        self.ca: Path | None = None  # the CA whose certificates it presents (HTTPS)

    def target(self, origin: Process, https: bool) -> Target:
        """How the load generator reaches the origin through this process (or directly)."""
        if not https:
            return Target(self.address)
        assert self.ca is not None, f"{self.name}: no CA known"
        tunnel = None if self is origin else origin.address
        return Target(self.address, client_tls(self.ca), tunnel)

    def start(self, timeout: float = 60.0) -> Process:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                cwd=self.workdir,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None:
                raise RuntimeError(self.report(f"exited with status {self.proc.returncode}"))
            if time.monotonic() > deadline:
                raise RuntimeError(self.report(f"not ready within {timeout:g} s"))
            time.sleep(0.05)
        return self

    def ready(self) -> bool:
        raise NotImplementedError

    def report(self, what: str) -> str:
        out = self.stdout.read_text(errors="replace")[-2000:]
        err = self.stderr.read_text(errors="replace")[-2000:]
        return f"{self.name} {what}\n--- stdout\n{out}\n--- stderr\n{err}"

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)  # our own session, by its id
                self.proc.wait(10)

    # /proc figures of the process itself

    def status(self, key: str) -> int:
        """VmRSS, VmHWM, … in bytes."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def reset_peak(self) -> bool:
        assert self.proc is not None
        try:
            Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
        except OSError:
            return False
        return True

    @contextlib.contextmanager
    def peak_rss(self, interval: float = 0.005) -> Iterator[list[int]]:
        """Yields a list that holds, after the block, the peak RSS in bytes during it."""
        self.reset_peak()
        peak = [self.status("VmRSS")]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(interval):
                with contextlib.suppress(OSError):
                    peak[0] = max(peak[0], self.status("VmRSS"))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            yield peak
        finally:
            done.set()
            sampler.join()
            peak[0] = max(peak[0], self.status("VmHWM"), self.status("VmRSS"))

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


class Origin(Process):
    def ready(self) -> bool:
        text = self.stdout.read_text()
        if "listening on" not in text:
            return False
        self.address = (HOST, int(text.split("listening on ")[1].split(":")[1]))
        return True


class Mitmdump(Process):
    def __init__(self, workdir: Path, upstream_ca: Path | None) -> None:
        self.port = free_port()
        command = venv_tool(
            "mitmdump", ["-c", "from mitmproxy.tools.main import mitmdump; mitmdump()"]
        )
        command += [
            "-q",
            "--listen-host",
            HOST,
            "--listen-port",
            str(self.port),
            "--set",
            f"confdir={workdir / 'mitmproxy-confdir'}",
            "--set",
            "connection_strategy=lazy",
            "--set",
            f"stream_large_bodies={STREAM_ABOVE}",
            "--set",
            "onboarding=false",
        ]
        if upstream_ca:
            command += ["--set", f"ssl_verify_upstream_trusted_ca={upstream_ca}"]
        super().__init__("mitmproxy", command, workdir)
        self.ca = workdir / "mitmproxy-confdir" / "mitmproxy-ca-cert.pem"

    def ready(self) -> bool:
        try:
            socket.create_connection((HOST, self.port), timeout=1).close()
        except OSError:
            return False
        self.address = (HOST, self.port)
        return True


class Leakguard(Process):
    def __init__(self, workdir: Path, policy: Path | None, upstream_ca: Path | None) -> None:
        self.state_dir = workdir / "leakguard-state"
        command = venv_tool("leakguard", ["-m", "gateway.cli"])
        command += ["run", "--proxy-listen", f"{HOST}:0", "--state-dir", str(self.state_dir)]
        command += ["--no-relay"] + (["--policy", str(policy)] if policy else [])
        command += ["--upstream-ca", str(upstream_ca)] if upstream_ca else []
        super().__init__("leakguard", command, workdir)

    def ready(self) -> bool:
        text = self.stdout.read_text()
        if "leakguard: ready" not in text:
            return False
        line = next(x for x in text.splitlines() if "proxy listening on" in x)
        ca = [x for x in text.splitlines() if x.startswith("leakguard: CA certificate: ")]
        self.ca = Path(ca[0].split(": ", 2)[2]) if ca else None
        self.address = (HOST, int(line.split("proxy listening on ")[1].split()[0].rsplit(":")[1]))
        return True

    def events(self) -> list[dict]:
        path = self.state_dir / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(x) for x in path.read_text("utf-8").splitlines() if x.strip()]


# -- the benchmark --------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    kind: str  # "rps" or "mbps"
    method: str
    path: str
    bodies: list[bytes]
    connections: int
    goal: float | None = None  # share of mitmproxy's figure the issue asks for
    runs: dict[str, list[Run]] = field(default_factory=dict)  # contender -> one per round
    warm_answered: Counter = field(default_factory=Counter)  # 200s of the untimed warm-up

    @property
    def uploads(self) -> bool:
        return self.kind == "mbps"

    def rate(self, who: str) -> float:
        return statistics.median(getattr(r, self.kind) for r in self.runs[who])

    def latency(self, who: str, q: float) -> float:
        return statistics.median(r.quantile(q) for r in self.runs[who]) * 1e3

    def cpu_ms(self, who: str) -> float:
        return statistics.median(r.cpu / max(1, r.answered) for r in self.runs[who]) * 1e3

    def peak_rss(self, who: str) -> int:
        return max(r.peak_rss for r in self.runs[who])

    def errors(self, who: str) -> Counter:
        total: Counter = Counter()
        for r in self.runs[who]:
            total += r.errors
        return total

    def answered(self, who: str) -> int:
        return self.warm_answered[who] + sum(r.answered for r in self.runs[who])


def build_phases(args: argparse.Namespace) -> tuple[list[Phase], str]:
    t0 = time.perf_counter()
    uploads, planted, doc = [], Counter(), 0
    for _ in range(args.bodies):
        body, values, doc = json_body(MIB, args.seed, doc)
        uploads.append(body)
        planted += values
    small, up = args.connections, args.upload_connections
    phases = [
        Phase("GET 1 KiB", "rps", "GET", "/api/items?page=3", [], small, RPS_GOAL),
        Phase("POST 1 KiB", "rps", "POST", "/api/drafts", [small_post_body()], small, RPS_GOAL),
        Phase("upload 1 MiB", "mbps", "POST", "/api/upload", uploads, up, UPLOAD_GOAL),
    ]
    if args.big_mib:
        size = args.big_mib * MIB
        big, values, _ = json_body(size, args.seed + 1, 0)
        label = f"upload {args.big_mib} MiB" + (" (streamed)" if size > STREAM_ABOVE else "")
        phases.append(Phase(label, "mbps", "POST", "/api/upload", [big], args.big_connections))
    note = (
        f"Upload bodies: {len(uploads)} different 1 MiB JSON documents (office-profile text, "
        f"~{planted.total() / len(uploads):.0f} values of PII each"
        + (f"; one {args.big_mib} MiB body" if args.big_mib else "")
        + f"); built in {time.perf_counter() - t0:.1f} s"
    )
    return phases, note


def measure(
    phases: list[Phase],
    origin: Origin,
    proxies: list[Process],
    args: argparse.Namespace,
) -> None:
    contenders: list[Process] = [origin, *proxies]
    targets = {who.name: who.target(origin, args.https) for who in contenders}
    for phase in phases:  # untimed warm-up: engines compiled, caches filled, pages touched
        for proxy in proxies:
            absolute = not args.https
            reqs = build_requests(phase.method, phase.path, phase.bodies, origin.address, absolute)
            run = load(targets[proxy.name], reqs, phase.connections, args.warmup * 2, 0.0)
            phase.warm_answered[proxy.name] += run.answered
        for who in contenders:
            phase.runs[who.name] = []
    for r in range(args.rounds):
        for phase in phases:
            for k in range(len(contenders)):
                who = contenders[(k + r) % len(contenders)]
                absolute = who is not origin and not args.https
                reqs = build_requests(
                    phase.method, phase.path, phase.bodies, origin.address, absolute
                )
                cpu0 = who.cpu_seconds()
                with who.peak_rss() if phase.uploads else contextlib.nullcontext([0]) as peak:
                    run = load(
                        targets[who.name], reqs, phase.connections, args.seconds, args.warmup
                    )
                run.cpu = who.cpu_seconds() - cpu0
                run.peak_rss = peak[0]
                phase.runs[who.name].append(run)
        print(f"  round {r + 1}/{args.rounds} done", flush=True)


# -- report ---------------------------------------------------------------------------


def fmt_rate(phase: Phase, value: float) -> str:
    return f"{value:,.0f}" if phase.kind == "rps" else f"{value:,.1f}"


def unit(phase: Phase) -> str:
    return "requests/s" if phase.kind == "rps" else "upload MB/s"


def print_main_table(phases: list[Phase]) -> list[tuple[str, float, float, bool]]:
    print(f"\n{'metric':<36}{'mitmproxy':>11}{'leakguard':>11}{'ratio':>8}{'goal':>8}{'met?':>7}")
    verdicts = []
    for phase in phases:
        base, cand = phase.rate("mitmproxy"), phase.rate("leakguard")
        ratio = cand / base if base else 0.0
        goal = phase.goal
        met = "-" if goal is None else ("yes" if ratio >= goal else "MISS")
        label = f"{unit(phase)}, {phase.name}"
        goal_text = "-" if goal is None else f">={goal:.0%}"
        print(
            f"{label:<36}{fmt_rate(phase, base):>11}{fmt_rate(phase, cand):>11}"
            f"{ratio:>8.0%}{goal_text:>8}{met:>7}"
        )
        if goal is not None:
            verdicts.append((label, ratio, goal, ratio >= goal))
    return verdicts


def print_latency_table(phases: list[Phase]) -> None:
    print("\nLatency per request, ms (median over rounds of each round's p50 / p99):")
    print(
        f"  {'phase':<26}{'conns':>6}{'origin p50':>12}{'p99':>8}{'mitmproxy p50':>15}{'p99':>8}"
        f"{'leakguard p50':>15}{'p99':>8}"
    )
    for p in phases:
        cells = "".join(
            f"{p.latency(who, 0.5):>{w}.2f}{p.latency(who, 0.99):>8.2f}"
            for who, w in (("origin", 12), ("mitmproxy", 15), ("leakguard", 15))
        )
        print(f"  {p.name:<26}{p.connections:>6}{cells}")


def print_cost_table(phases: list[Phase], idle: dict[str, int]) -> None:
    print("\nProxy process cost (CPU: user+system over answered requests, median over rounds):")
    print(
        f"  {'phase':<26}{'mitmproxy CPU ms/req':>22}{'leakguard CPU ms/req':>22}{'extra':>10}"
        f"{'peak RSS: mitmproxy':>22}{'leakguard':>18}"
    )
    for p in phases:
        a, b = p.cpu_ms("mitmproxy"), p.cpu_ms("leakguard")
        rss = ""
        if p.uploads:
            cells = []
            for who, w in (("mitmproxy", 10), ("leakguard", 8)):
                peak = p.peak_rss(who)
                cells.append(f"{peak / MIB:>{w}.0f} MiB (+{(peak - idle[who]) / MIB:.0f})")
                cells[-1] = cells[-1].ljust(w + 10)
            rss = "".join(cells)
        print(f"  {p.name:<26}{a:>22.2f}{b:>22.2f}{b - a:>+10.2f}{rss}".rstrip())
    print(
        f"  (idle RSS after start: mitmproxy {idle['mitmproxy'] / MIB:.0f} MiB, leakguard "
        f"{idle['leakguard'] / MIB:.0f} MiB; peak RSS: during each upload run, highest "
        "over rounds, (+ above idle);\n   memory kept from earlier phases and rounds counts: "
        "Python seldom returns it)"
    )


def print_origin_ceiling(phases: list[Phase]) -> None:
    print("\nThe origin alone (same load generator, no proxy), so it is not the bottleneck:")
    for p in phases:
        direct = p.rate("origin")
        fastest = max(p.rate("mitmproxy"), p.rate("leakguard"))
        times = direct / fastest if fastest else float("inf")
        warn = "" if times >= 2 else "  <- too close: the origin or the load generator limits"
        print(
            f"  {p.name:<26}{fmt_rate(p, direct):>10} {unit(p):<12}"
            f"= {times:.1f}x the faster proxy{warn}"
        )


def print_errors(phases: list[Phase]) -> None:
    bad = [(p.name, who, p.errors(who)) for p in phases for who in p.runs if p.errors(who)]
    if not bad:
        print("\nErrors: none (every request answered 200).")
        return
    print("\nErrors (the comparison is suspect where these are many):")
    for name, who, errors in bad:
        print(f"  {name} via {who}: " + ", ".join(f"{k} x{n}" for k, n in errors.items()))


def print_budget(phases: list[Phase], seed: int) -> None:
    """What the upload goal leaves for inspecting 1 MiB, beside what inspecting it costs
    at least (bench/upload_scan.py --floors, in its own process once the load is over)."""
    upload = next((p for p in phases if p.name == "upload 1 MiB"), None)
    if upload is None:
        return
    mitm = upload.cpu_ms("mitmproxy")
    allowed = mitm / UPLOAD_GOAL
    budget = allowed - mitm
    command = [sys.executable, str(HERE / "upload_scan.py"), "--floors", "--json"]
    done = subprocess.run(
        [*command, "--seed", str(seed)], capture_output=True, text=True, cwd=HERE.parent
    )
    print(
        f"\nThe upload goal's budget: mitmproxy spends {mitm:.2f} ms of CPU on a 1 MiB upload; "
        f"at {UPLOAD_GOAL:.0%} of its rate\n(CPU-bound, one process) leakguard may spend "
        f"{allowed:.2f} ms, which leaves {budget:.2f} ms to inspect the body. "
        "What inspecting it costs, ms of CPU:"
    )
    if done.returncode or not done.stdout.strip():
        print(f"  (bench/upload_scan.py --floors failed: {done.stderr.strip()[-300:]})")
        return
    for what, ms in json.loads(done.stdout.splitlines()[-1]).items():
        times = f"{ms / budget:.1f}x the budget" if budget > 0 else ""
        print(f"  {what:<44}{ms:8.2f}  {times}")


def print_inspection(phases: list[Phase], leakguard: Leakguard) -> None:
    events = leakguard.events()
    requests = [e for e in events if e.get("type") == "http.request"]
    with_findings = [e for e in requests if e.get("findings")]
    actions = Counter(e.get("action") for e in requests)
    detectors = Counter(f.get("type") or f.get("detector") for e in requests for f in e["findings"])
    uploads = sum(p.answered("leakguard") for p in phases if p.uploads)
    print(
        f"\nleakguard inspected the uploads: {len(with_findings):,} http.request events with "
        f"findings for {uploads:,} uploads answered 200 (warm-up included); actions: "
        + (", ".join(f"{a} {n:,}" for a, n in actions.items()) or "none")
    )
    if detectors:
        top = ", ".join(f"{d} {n:,}" for d, n in detectors.most_common(6))
        print(f"  findings by detector: {top}")
    if len(with_findings) < uploads:
        print("  WARNING: fewer events with findings than uploads: not every upload was judged")


def code_version() -> str:
    def git(*cmd: str) -> str:
        done = subprocess.run(["git", *cmd], cwd=HERE, capture_output=True, text=True, check=False)
        return done.stdout.rstrip("\n")

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    paths = (":/proxy", ":/gateway", ":/rules", ":/audit")  # from the top, not from bench/
    dirty = git("status", "--porcelain", "--untracked-files=all", "--", *paths).splitlines()
    changed = sorted({line[3:] for line in dirty})
    return commit + (f" + uncommitted changes: {', '.join(changed)}" if changed else "")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, help="measured seconds per run (default 3)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5)")
    parser.add_argument("--connections", type=int, help="for requests/s (default 8)")
    parser.add_argument("--upload-connections", type=int, help="for 1 MiB uploads (default 4)")
    parser.add_argument("--big-connections", type=int, default=2, help="for the big upload")
    parser.add_argument(
        "--big-mib", type=int, default=32, help="size of the big upload (default 32)"
    )
    parser.add_argument("--no-big", action="store_true", help="skip the big upload")
    parser.add_argument("--bodies", type=int, default=4, help="different 1 MiB upload bodies")
    parser.add_argument("--policy", type=Path, help="leakguard's policy (default: shipped)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny and short")
    parser.add_argument(
        "--https",
        action="store_true",
        help="HTTPS through CONNECT (each proxy intercepts with its CA; origin on TLS)",
    )
    parser.add_argument("--serve-origin", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tls-cert", help=argparse.SUPPRESS)
    parser.add_argument("--tls-key", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    args.seconds = args.seconds or (0.5 if quick else 3.0)
    args.rounds = args.rounds or (1 if quick else 5)
    args.connections = args.connections or (2 if quick else 8)
    args.upload_connections = args.upload_connections or (1 if quick else 4)
    if quick:
        args.big_connections, args.bodies = 1, min(args.bodies, 2)
    args.warmup = 0.2 if quick else 0.5
    if args.no_big:
        args.big_mib = 0
    return args


@contextlib.contextmanager
def started(*processes: Process) -> Iterator[None]:
    try:
        for p in processes:
            p.start()
        yield
    finally:
        for p in reversed(processes):
            p.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_origin:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve_origin(args.tls_cert, args.tls_key))
        return 0
    import mitmproxy.version

    print(f"leakguard proxy benchmark, code at {code_version()}")
    print(
        f"Python {platform.python_version()}, mitmproxy {mitmproxy.version.VERSION}, "
        f"{os.cpu_count()} CPUs; {args.rounds} interleaved round(s) of {args.seconds:g} s "
        f"per contender and phase (+{args.warmup:g} s warm-up on the same connections)"
    )
    if args.https:
        print("HTTPS: CONNECT, then TLS to each proxy's own CA; origin on TLS (its own CA)")
    else:
        print("Plain HTTP through the explicit proxy (absolute-form requests); --https for TLS")
    phases, note = build_phases(args)
    print(note)
    with tempfile.TemporaryDirectory(prefix="lg-bench-proxy-") as tmp:
        workdir = Path(tmp)
        command = [sys.executable, __file__, "--serve-origin"]
        upstream_ca = None
        if args.https:
            upstream_ca, cert, key = origin_certificate(workdir)
            command += ["--tls-cert", str(cert), "--tls-key", str(key)]
        origin = Origin("origin", command, workdir)
        origin.ca = upstream_ca
        mitm = Mitmdump(workdir, upstream_ca)
        guard = Leakguard(workdir, args.policy, upstream_ca)
        t0 = time.perf_counter()
        with started(origin, mitm, guard):
            print(
                f"Started in {time.perf_counter() - t0:.1f} s: origin {origin.address[1]}, "
                f"mitmproxy {mitm.address[1]}, leakguard {guard.address[1]} (all on {HOST})"
            )
            idle = {p.name: p.status("VmRSS") for p in (mitm, guard)}
            measure(phases, origin, [mitm, guard], args)
            verdicts = print_main_table(phases)
            print_latency_table(phases)
            print_cost_table(phases, idle)
            print_origin_ceiling(phases)
            print_errors(phases)
            print_inspection(phases, guard)
        print_budget(phases, args.seed)
    print("\nGoals from the issue (reported, never enforced):")
    for label, ratio, goal, met in verdicts:
        verdict = "PASS" if met else "MISS"
        print(f"  leakguard >= {goal:.0%} of mitmproxy, {label}: {ratio:.0%}  {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
