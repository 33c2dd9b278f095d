"""Relay throughput: leakguard beside a plain aiosmtpd relay and Postfix, same sink, one run.

What is measured, in one run, through each of three SMTP relays forwarding to
the same sink:

- plain relay: an aiosmtpd server (hostname= given, so no getfqdn per
  connection) whose handler forwards each message at once over pooled
  aiosmtplib connections to the sink: no spool, no inspection (own process,
  `relay.py --serve-plain`);
- Postfix: a private instance (its own config_directory and queue_directory
  under a temp dir, loopback only, a non-25 port, relayhost=[127.0.0.1]:SINK,
  mynetworks=127.0.0.0/8, no local delivery); installed from Debian's packages
  with --postfix if missing; if it cannot be set up the run says why and goes on
  without it;
- leakguard: `python -m mailrelay.server --no-tls` with a fresh state directory,
  the real judge with the shipped policy (or --policy DIR), durability on (every
  message fsync'ed into the spool before 250, delivered by its workers);

and, as a ceiling, straight to the sink. The phases:

1. `10 KiB`: messages of ~10 KiB (Chinese/English office prose, 8bit, one
   mobile number and one address in the body) to partner@example.org: the
   shipped policy records them (REPORT) and lets them through (messages/s);
2. `1 MiB attachment`: a short text part and a 1 MiB CSV attachment (base64)
   with a few mobile numbers and addresses in it, same recipient (MB/s, MB =
   10^6 bytes of message as sent; no goal in the issue).

The sink is an aiosmtpd server in its own process that counts messages and
bytes and keeps nothing (`relay.py --serve-sink`). The load generator is this
process: `--clients` concurrent aiosmtplib connections, each sending message
after message on one session. "accepted/s" is the messages over the time until
the last 250 to the clients; "delivered/s" (the figure the goals are about) is
the messages over the time until the sink has counted all of them, end to end.
"CPU ms/msg" (ms/MB) is the relay's user+system time from /proc over the run
(Postfix: its master, with reaped children, and the live children).

How: every phase runs `--rounds` times; in each round the contenders take turns
in a rotating order (the machine has 2 noisy cores), each sending a fixed number
of messages after a short warm-up; every figure is the median over rounds. The
goals of the issue (leakguard delivered msg/s >= 70 % of the plain relay's and
>= Postfix's) are reported, never enforced. After the load, the CPU the goal
leaves per message beyond the plain relay's forwarding is printed beside the
cost of leakguard's judge alone on the same messages (timed in its own
process). At the end leakguard's events.jsonl is checked: one smtp event with
findings per message it judged.

    .venv/bin/python bench/relay.py                 # ~2-3 minutes (+ apt-get once)
    .venv/bin/python bench/relay.py --no-postfix    # plain relay and leakguard only
    .venv/bin/python bench/relay.py --quick --no-postfix   # smoke run, ~15 s
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MB = 1e6
KIB, MIB = 1024, 2**20
MSGS_GOAL = 0.70  # the issue: leakguard >= 70 % of the plain relay's msg/s, and >= Postfix's
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SENDER = "alice.chen@firm.example"
RECIPIENT = "partner@example.org"  # external, not webmail: basic data is recorded and sent

PROSE = [
    "本季度项目进展顺利，客户对交付质量表示满意，下周将安排第二阶段的需求评审会议。",
    "The quarterly review is scheduled for Thursday; please bring the updated budget sheet.",
    "会议纪要已归档，相关附件请在共享目录中查阅，如有疑问请及时与项目经理沟通。",
    "We agreed to move the delivery date by one week to allow for additional testing.",
    "采购部门已确认报价单，合同文本由法务部审核后将于月底前寄出。",
    "Thanks for the quick turnaround on the draft; the comments are inline below.",
]


# -- messages ------------------------------------------------------------------------


def _prose(size: int, seed: int) -> str:
    lines, total, i = [], 0, seed
    while total < size:
        line = PROSE[i % len(PROSE)]
        lines.append(line)
        total += len(line.encode()) + 2
        i += 1
    return "\r\n".join(lines)


def _mobile(i: int) -> str:
    return f"138{(10_000_000 + i * 7_919) % 100_000_000:08d}"


def message_10k(i: int) -> bytes:
    """~10 KiB of office mail, one mobile and one address in the body: REPORT, sent."""
    head = (
        f"From: Alice Chen <{SENDER}>\r\nTo: <{RECIPIENT}>\r\n"
        f"Subject: =?utf-8?b?5Lya6K6u57qq6KaB?= {i}\r\n"
        f"Message-ID: <bench-{i}@firm.example>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode()
    contact = f"如需联系，请致电 {_mobile(i)} 或写信至 wang.lei@firm.example。\r\n"
    body = _prose(10 * KIB - len(head) - 200, i) + "\r\n" + contact
    return head + body.encode()


def message_attachment(i: int, size: int = MIB) -> bytes:
    """A short note and a `size` CSV attachment (base64) with a few contacts in it."""
    rows, total, n = ["date,item,quantity,amount,note"], 0, 0
    every = max(1, size // 40 // 6)  # rows are ~40 bytes: ~6 contacts per attachment
    while total < size:
        n += 1
        note = f"contact {_mobile(i + n)}" if n % every == 0 else "ok"
        row = f"2024-03-{n % 28 + 1:02d},item-{n % 977},{n % 50 + 1},{(n * 37) % 10000}.00,{note}"
        rows.append(row)
        total += len(row) + 2
    rows.append("owner,wang.lei@firm.example,,,")
    csv = ("\r\n".join(rows).encode())[:size]
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = f"Alice Chen <{SENDER}>"
    msg["To"] = RECIPIENT
    msg["Subject"] = f"monthly figures {i}"
    msg["Message-ID"] = f"<bench-att-{i}@firm.example>"
    msg.set_content(_prose(600, i) + "\r\n")
    msg.add_attachment(csv, maintype="text", subtype="csv", filename=f"figures-{i}.csv")
    return msg.as_bytes()


# -- the sink and the plain relay (each in its own process) ------------------------------


def _serve(handler: object, port: int, hostname: str) -> None:
    from aiosmtpd.smtp import SMTP

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname=hostname, data_size_limit=64 * MIB),
            HOST,
            port,
            reuse_address=True,
        )
        print("ready", server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


class SinkHandler:
    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.count += 1
        self.bytes += len(envelope.original_content or b"")
        return "250 OK counted"


def serve_sink(port: int) -> None:
    """Count messages; each line on stdin is answered with `count bytes` on stdout."""
    handler = SinkHandler()

    def answer() -> None:
        for _ in sys.stdin:
            print(handler.count, handler.bytes, flush=True)

    threading.Thread(target=answer, daemon=True).start()
    _serve(handler, port, "sink.bench")


class PlainRelayHandler:
    """Forward at once over pooled upstream connections; no spool, no inspection."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.pool: list = []

    async def handle_DATA(self, server, session, envelope) -> str:
        import aiosmtplib

        client = self.pool.pop() if self.pool else None
        if client is None or not client.is_connected:
            client = aiosmtplib.SMTP(
                hostname=HOST, port=self.upstream, start_tls=False, local_hostname="plain.bench"
            )
            await client.connect()
        try:
            await client.sendmail(envelope.mail_from, envelope.rcpt_tos, envelope.original_content)
        except aiosmtplib.SMTPException as exc:
            with contextlib.suppress(Exception):
                client.close()
            return f"451 upstream: {exc}"
        self.pool.append(client)
        return "250 OK relayed"


def serve_plain(port: int, upstream: int) -> None:
    _serve(PlainRelayHandler(upstream), port, "plain.bench")


# -- contenders ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1) as s:
            if s.recv(4).startswith(b"220"):
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing answers on {HOST}:{port} after {timeout:.0f} s")


def _start_child(*args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().split()
    if not line or line[0] != "ready":
        raise RuntimeError(f"{args[0]} did not start")
    return proc, int(line[1])


class Sink:
    def __init__(self) -> None:
        self.proc, self.port = _start_child("--serve-sink", "0")

    def counts(self) -> tuple[int, int]:
        self.proc.stdin.write("?\n")
        self.proc.stdin.flush()
        count, size = self.proc.stdout.readline().split()
        return int(count), int(size)

    def wait_for(self, count: int, timeout: float) -> float | None:
        """Monotonic time at which the sink had `count` messages, None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.counts()[0] >= count:
                return time.monotonic()
            time.sleep(0.002)
        return None


@dataclass
class Contender:
    name: str
    port: int
    procs: list[subprocess.Popen] = field(default_factory=list)
    stop: object = None  # a callable for Postfix
    cpu: object = None  # () -> CPU seconds the relay has used so far (all its processes)

    def cpu_seconds(self) -> float | None:
        if self.cpu:
            return self.cpu()
        return _cpu(self.procs[0].pid) if self.procs else None


def _stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on


def _cpu(pid: int, children: bool = False) -> float:
    """utime + stime (+ cutime + cstime of reaped children), in seconds."""
    f = _stat(pid)
    ticks = int(f[11]) + int(f[12]) + (int(f[13]) + int(f[14]) if children else 0)
    return ticks / CLK_TCK


def _tree_cpu(master: int) -> float:
    """A master and its live children; exited ones are in the master's cutime once reaped."""
    total = _cpu(master, children=True)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                f = _stat(int(entry.name))
                if int(f[1]) == master:
                    total += _cpu(int(entry.name))
    return total


def start_leakguard(
    sink: Sink, state: Path, policy: Path | None, judge: str | None = None
) -> Contender:
    port = free_port()
    cmd = [sys.executable, "-m", "mailrelay.server", "--state-dir", str(state)]
    cmd += ["--listen", f"{HOST}:{port}", "--smarthost", f"{HOST}:{sink.port}"]
    cmd += ["--no-tls", "--hostname", "leakguard.bench"]
    if policy:
        cmd += ["--policy", str(policy)]
    if judge:
        cmd += ["--judge", judge]
    log = open(state.parent / "leakguard.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    wait_port(port, 60, proc)
    return Contender("leakguard", port, [proc])


def _run(cmd: list[str], timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True, **kw)


def install_postfix() -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run(
        ["debconf-set-selections"],
        input="postfix postfix/main_mailer_type select No configuration\n",
    )
    _run(["apt-get", "install", "-y", "-q", "postfix"], timeout=600, env=env)


def postfix_wanted(choice: bool | None) -> bool:
    if choice is not None:
        return choice
    if shutil.which("postfix") or Path("/usr/sbin/postfix").exists():
        return True
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def start_postfix(sink: Sink, tmp: Path) -> Contender:
    postfix = shutil.which("postfix") or "/usr/sbin/postfix"
    if not Path(postfix).exists():
        print("Postfix is not installed: apt-get install -y postfix ...", flush=True)
        install_postfix()
    if os.geteuid() != 0:
        raise RuntimeError("a private Postfix instance needs root to start")
    conf = tmp / "postfix"
    (conf / "queue").mkdir(parents=True)
    (conf / "data").mkdir()
    port = free_port()
    main_cf = f"""
compatibility_level = 3.6
config_directory = {conf}
queue_directory = {conf}/queue
data_directory = {conf}/data
meta_directory = /etc/postfix
myhostname = postfix.bench
mydestination =
local_recipient_maps =
local_transport = error:no local delivery
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [{HOST}]:{sink.port}
smtp_tls_security_level = none
smtpd_tls_security_level = none
message_size_limit = {64 * MIB}
maillog_file = {conf}/maillog
maillog_file_prefixes = {conf}
syslog_name = postfix-bench
"""
    (conf / "main.cf").write_text(main_cf)
    tmp.chmod(0o755)  # the daemons run as the postfix user
    shutil.chown(conf / "data", "postfix")
    services = []
    for line in Path("/etc/postfix/master.cf").read_text().splitlines():
        fields = line.split()
        if line[:1] in ("#", " ", "\t", "") or len(fields) < 8:
            services.append(line)
            continue
        if fields[0] == "smtp" and fields[1] == "inet":
            fields[0] = f"{HOST}:{port}"
        fields[4] = "n"  # no chroot: the queue is under a temp dir
        services.append("  ".join(fields))
    services.append("postlog   unix-dgram n  -       n       -       1       postlogd")
    (conf / "master.cf").write_text("\n".join(services) + "\n")
    try:
        _run([postfix, "-c", str(conf), "check"])
        _run([postfix, "-c", str(conf), "start"])
        wait_port(port, 30)
    except Exception:
        with contextlib.suppress(Exception):
            _run([postfix, "-c", str(conf), "abort"])
        log = conf / "maillog"
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        problems = [line for line in lines if "fatal" in line or "error" in line]
        raise RuntimeError("; ".join((problems or lines or ["no maillog"])[-3:])) from None

    def stop() -> None:
        with contextlib.suppress(Exception):
            _run([postfix, "-c", str(conf), "stop"])
        time.sleep(0.5)

    master = int((conf / "queue" / "pid" / "master.pid").read_text().split()[0])
    return Contender("postfix", port, stop=stop, cpu=lambda: _tree_cpu(master))


# -- load ----------------------------------------------------------------------------


@dataclass
class Run:
    sent: int = 0
    bytes: int = 0
    accepted_s: float = 0.0
    cpu_s: float | None = None
    delivered_s: float | None = None
    errors: list[str] = field(default_factory=list)


async def _send(port: int, messages: list[bytes], clients: int) -> tuple[int, int, list[str]]:
    import aiosmtplib

    queue = list(range(len(messages)))
    queue.reverse()
    errors: list[str] = []
    sent = size = 0

    async def client() -> None:
        nonlocal sent, size
        smtp = aiosmtplib.SMTP(
            hostname=HOST, port=port, start_tls=False, local_hostname="client.bench", timeout=120
        )
        await smtp.connect()
        try:
            while queue:
                data = messages[queue.pop()]
                try:
                    await smtp.sendmail(SENDER, [RECIPIENT], data, mail_options=["BODY=8BITMIME"])
                    sent += 1
                    size += len(data)
                except aiosmtplib.SMTPException as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    if not smtp.is_connected:
                        await smtp.connect()
        finally:
            with contextlib.suppress(Exception):
                await smtp.quit()

    await asyncio.gather(*(client() for _ in range(clients)))
    return sent, size, errors


def measure(c: Contender, sink: Sink, messages: list[bytes], clients: int, timeout: float) -> Run:
    port = c.port
    before = sink.counts()[0]
    cpu0 = c.cpu_seconds()
    t0 = time.monotonic()
    sent, size, errors = asyncio.run(_send(port, messages, clients))
    accepted = time.monotonic() - t0
    done = sink.wait_for(before + sent, timeout)
    if done is None:
        errors.append(f"only {sink.counts()[0] - before} of {sent} reached the sink")
    cpu = None if cpu0 is None else c.cpu_seconds() - cpu0
    delivered = None if done is None else done - t0
    return Run(sent, size, accepted_s=accepted, delivered_s=delivered, cpu_s=cpu, errors=errors)


# -- report --------------------------------------------------------------------------


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _check_events(events: Path, expected: int, wait: float = 10.0) -> str:
    """One smtp.message event (REPORT, with findings) and one smtp.delivery per message.

    The sink counts a message before leakguard has its 250 and records the delivery:
    the last events may come a moment after the last message reached the sink.
    """
    deadline = time.monotonic() + wait
    while True:
        judged = reported = delivered = 0
        lines = events.read_text().splitlines() if events.exists() else []
        for line in lines:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("type") == "smtp.message":
                    judged += 1
                    reported += event.get("action") == "report" and bool(event.get("findings"))
                delivered += event.get("type") == "smtp.delivery"
        ok = judged == reported == delivered == expected
        if ok or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    text = (
        f"leakguard events: {judged} smtp.message ({reported} REPORT with findings),"
        f" {delivered} smtp.delivery, for {expected} messages sent through it"
    )
    return text if ok else "WARNING: " + text


@contextlib.contextmanager
def contenders(args: argparse.Namespace, sink: Sink, tmp: Path) -> Iterator[list[Contender]]:
    started: list[Contender] = []
    try:
        proc, port = _start_child("--serve-plain", "0", str(sink.port))
        started.append(Contender("plain relay", port, [proc]))
        if postfix_wanted(args.postfix):
            try:
                started.append(start_postfix(sink, tmp))
            except Exception as exc:  # never fail the whole bench for Postfix
                detail = getattr(exc, "stderr", "") or ""
                print(f"Postfix skipped: {exc} {detail.strip()[-600:]}", flush=True)
        else:
            print("Postfix skipped (--no-postfix, or not installed and cannot install)")
        state = tmp / "leakguard-state"
        started.append(start_leakguard(sink, state, args.policy, args.judge))
        yield started
    finally:
        for c in started:
            if c.stop:
                c.stop()
            for p in c.procs:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(10)
                if p.poll() is None:
                    p.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve-sink", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-plain", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--time-judge", type=Path, help=argparse.SUPPRESS)  # a state dir
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--messages", type=int, default=1500, help="10 KiB messages per run")
    parser.add_argument("--attachments", type=int, default=64, help="1 MiB messages per run")
    parser.add_argument("--attachment-kib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--policy", type=Path, help="leakguard's policy (default: shipped)")
    parser.add_argument(
        "--judge",
        help="leakguard's judge as MODULE:CALLABLE instead of the real one (to see what the"
        " relay costs without inspection, e.g. tests.support.smtp:deliver_all)",
    )
    parser.add_argument("--postfix", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--timeout", type=float, default=120, help="per run, for the sink")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny and one round")
    args = parser.parse_args(argv)
    if args.serve_sink is not None:
        serve_sink(args.serve_sink)
        return 0
    if args.serve_plain:
        serve_plain(*args.serve_plain)
        return 0
    if args.time_judge:
        print(json.dumps(time_judge(args.time_judge, args.policy)))
        return 0
    if args.quick:
        args.messages, args.attachments, args.rounds = 60, 4, 1
        args.clients, args.attachment_kib = min(args.clients, 4), 128

    sys.path.insert(0, str(ROOT))
    small = [message_10k(i) for i in range(args.messages)]
    big = [message_attachment(i, args.attachment_kib * KIB) for i in range(args.attachments)]
    warm_small, warm_big = small[: max(16, len(small) // 10)], big[:2]
    att = f"{args.attachment_kib} KiB" if args.attachment_kib != 1024 else "1 MiB"
    phases = [("10 KiB", small, warm_small), (f"{att} attachment", big, warm_big)]
    print(f"Relay throughput: {platform.python_version()}, {os.cpu_count()} CPUs")
    print(
        f"Load: {args.clients} clients; per run {len(small)} x {len(small[0]):,} B messages,"
        f" {len(big)} x {len(big[0]):,} B ({att} CSV attachment, base64); {args.rounds} rounds,"
        " rotating order, medians",
        flush=True,
    )
    results: dict[tuple[str, str], list[Run]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmpdir:
        tmp = Path(tmpdir)
        sink = Sink()
        try:
            with contenders(args, sink, tmp) as started:
                targets = [Contender("sink direct", sink.port), *started]
                names = [c.name for c in started]
                for c in targets:  # warm-up: imports, judge, pools
                    for _, _, warm in phases:
                        measure(c, sink, warm, args.clients, args.timeout)
                for r in range(args.rounds):
                    order = targets[r % len(targets) :] + targets[: r % len(targets)]
                    for label, msgs, _ in phases:
                        for c in order:
                            run = measure(c, sink, msgs, args.clients, args.timeout)
                            results.setdefault((label, c.name), []).append(run)
                    print(f"  round {r + 1}/{args.rounds} done", flush=True)
                through = sum(
                    r.sent
                    for (_, name), runs in results.items()
                    for r in runs
                    if name == "leakguard"
                )
                through += sum(len(warm) for _, _, warm in phases)
                events = _check_events(tmp / "leakguard-state" / "events.jsonl", through)
        finally:
            sink.proc.kill()
            sink.proc.wait()
    report(results, names, phases, events)
    if "plain relay" in names:
        print_budget(results, args.policy)
    return 0


def time_judge(state: Path, policy: Path | None) -> dict[str, float]:
    """Median CPU ms of leakguard's real judge on one 10 KiB bench message, alone."""
    sys.path.insert(0, str(ROOT))
    from audit.events import JsonLinesLog
    from mailrelay.plan import Envelope
    from mailrelay.server import real_judge

    state.mkdir(parents=True, exist_ok=True)
    judge = real_judge(state, policy, JsonLinesLog(state / "events.jsonl").record)
    envelope = Envelope(SENDER, (RECIPIENT,), source_ip=HOST, message_id="bench")
    messages = [message_10k(i) for i in range(400)]
    times = []
    for i, data in enumerate(messages * 2):
        start = time.process_time()
        judge(data, envelope)
        if i >= len(messages):  # the first pass warms up
            times.append(time.process_time() - start)
    return {"judge alone": 1000 * statistics.median(times)}


def print_budget(results: dict, policy: Path | None) -> None:
    """What the goal leaves for inspecting and spooling a 10 KiB message, beside the
    judge's own cost (timed in its own process once the load is over)."""
    runs = results.get(("10 KiB", "plain relay"), [])
    plain = median([1000 * r.cpu_s / r.sent for r in runs if r.cpu_s])
    if not plain:
        return
    allowed = plain / MSGS_GOAL
    with tempfile.TemporaryDirectory(prefix="bench-judge-") as tmp:
        command = [sys.executable, __file__, "--time-judge", tmp]
        command += ["--policy", str(policy)] if policy else []
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    print(
        f"\nThe goal's budget: the plain relay spends {plain:.2f} ms of CPU on a 10 KiB message;"
        f" at {MSGS_GOAL:.0%} of its rate\n(CPU-bound, one interpreter) leakguard may spend"
        f" {allowed:.2f} ms, which leaves {allowed - plain:.2f} ms beyond forwarding it for"
        " judging, spooling and recording it."
    )
    if done.returncode or not done.stdout.strip():
        print(f"  (timing the judge failed: {done.stderr.strip()[-300:]})")
        return
    for what, ms in json.loads(done.stdout.splitlines()[-1]).items():
        print(f"  {what:<44}{ms:8.2f} ms  {ms / (allowed - plain):.1f}x what is left")


def report(results: dict, names: list[str], phases: list, events: str) -> None:
    def fig(label: str, name: str, kind: str, per_mb: bool) -> float | None:
        runs = results.get((label, name), [])
        vals = []
        for r in runs:
            secs = r.accepted_s if kind == "accepted" else r.delivered_s
            if secs:
                vals.append((r.bytes / MB if per_mb else r.sent) / secs)
        return median(vals)

    def cpu_per(label: str, name: str, per_mb: bool) -> float | None:
        runs = results.get((label, name), [])
        vals = [1000 * r.cpu_s / (r.bytes / MB if per_mb else r.sent) for r in runs if r.cpu_s]
        return median(vals)

    cols = ["plain relay", "postfix", "leakguard"]
    head = f"{'metric':<34} | {'plain relay':>11} | {'postfix':>9} | {'leakguard':>9} |"
    head += f" {'ratio vs plain':>14} | {'goal':<36} | met?"
    print()
    print(head)
    print("-" * len(head))
    for i, (label, _, _) in enumerate(phases):
        per_mb = i == 1
        unit = "MB/s" if per_mb else "msg/s"
        for kind in ("delivered", "accepted"):
            vals = {c: fig(label, c, kind, per_mb) if c in names else None for c in cols}
            lg, plain, pf = vals["leakguard"], vals["plain relay"], vals["postfix"]
            ratio = f"{lg / plain:.0%}" if lg and plain else "-"
            goal, met = "-", "-"
            if not per_mb and kind == "delivered":
                goal = f">={MSGS_GOAL:.0%} plain, >=postfix"
                ok = lg is not None and plain is not None and lg >= MSGS_GOAL * plain
                if "postfix" in names:
                    ok = ok and pf is not None and lg >= pf
                else:
                    goal += " (no postfix)"
                met = "yes" if ok else "NO"
            digits = 1 if per_mb else 0
            print(
                f"{label + ' ' + kind + ' ' + unit:<34} | {fmt(plain, digits):>11} |"
                f" {fmt(pf, digits):>9} | {fmt(lg, digits):>9} | {ratio:>14} | {goal:<36} | {met}"
            )
        vals = {c: cpu_per(label, c, per_mb) for c in cols}
        lg, plain, pf = vals["leakguard"], vals["plain relay"], vals["postfix"]
        ratio = f"{lg / plain:.1f}x" if lg and plain else "-"
        unit = "CPU ms/MB" if per_mb else "CPU ms/msg"
        print(
            f"{label + ' relay ' + unit:<34} | {fmt(plain, 2):>11} |"
            f" {fmt(pf, 2):>9} | {fmt(lg, 2):>9} | {ratio:>14} | {'-':<36} | -"
        )
    ceiling = [
        fmt(fig(label, "sink direct", "delivered", i == 1), 1 if i else 0)
        for i, (label, _, _) in enumerate(phases)
    ]
    print(
        f"\nThe sink alone (no relay): {ceiling[0]} msg/s (10 KiB),"
        f" {ceiling[1]} MB/s ({phases[1][0]})"
    )
    print(
        "CPU: user+system of the relay's processes (Postfix: master and its children) from"
        " accept to the last delivery, per message or per MB sent; this process (the clients)"
        " and the sink share the same cores."
    )
    errors = [e for runs in results.values() for r in runs for e in r.errors]
    print("Errors: none" if not errors else f"WARNING: {len(errors)} errors, e.g. {errors[:3]}")
    print(events)


if __name__ == "__main__":
    sys.exit(main())
