"""What IT needs to roll clients out, served by the proxy on its own address.

    ClientSetup(services, state_dir)   mitmproxy addon; hook: requestheaders

    /                          a short page in Chinese and English linking the files below
    /leakguard/ca.pem          the CA certificates clients should trust (PEM; during a
                               rotation the current and the next/previous CA)
    /leakguard/ca.der, ca.crt  the current CA alone (DER), for Windows and Android installers
    /proxy.pac, /wpad.dat      the proxy auto-config built from the policy (proxy.pac)

A request is for the proxy itself when it names an address the proxy listens
on, and that port (`localhost` for a loopback address; any address of this
host when it listens on all of them): a browser fetching the PAC file directly,
or through the proxy. Another loopback address on the same port is not the
proxy (a PAC naming it would point clients at nothing); Isolation refuses it if
it would loop. Such requests are answered here and never
go upstream (they would loop). Must be added before `Isolation`, which would
block them as `isolation:self`. Only GET and HEAD are served.
"""

from __future__ import annotations

import html
import ipaddress
import socket
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from mitmproxy import ctx, http

from certs.ca import load_ca
from certs.rotation import trusted_cas
from proxy.addresses import IPAddress, host_ip, plain
from proxy.pac import render_pac
from proxy.services import Services

CA_PEM = "/leakguard/ca.pem"
CA_DER = ("/leakguard/ca.der", "/leakguard/ca.crt")
PAC = ("/proxy.pac", "/wpad.dat")
PAC_TYPE = "application/x-ns-proxy-autoconfig"


class ClientSetup:
    def __init__(self, services: Services, state_dir: Path) -> None:
        self.services = services
        self.state_dir = Path(state_dir)
        self._local: dict[IPAddress, bool] = {}
        # where the proxy listens, asked of mitmproxy once it runs (not on every request)
        self._listening: list[tuple[str, int]] | None = None

    def running(self) -> None:
        self._listening = None

    def configure(self, updated: set[str]) -> None:
        if updated & {"listen_host", "listen_port", "mode"}:
            self._listening = None  # servers restarted: ask again

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        request = flow.request
        if request.method == "CONNECT" or not self._is_own(request.host, request.port):
            return
        if request.method not in ("GET", "HEAD"):
            flow.response = _text(405, "Only GET and HEAD are served here.\n")
            return
        path = request.path.split("?", 1)[0]
        try:
            flow.response = self._answer(path, request)
        except Exception as err:  # a missing CA, say: a clear 500, not a crash
            flow.response = _text(500, f"leakguard: cannot serve {path}: {err}\n")
        flow.metadata["leakguard.client_setup"] = path

    # -- what is served --------------------------------------------------------------------

    def _answer(self, path: str, request: http.Request) -> http.Response:
        if path == CA_PEM:
            pem = b"".join(ca.cert_pem for ca in trusted_cas(self.state_dir))
            return _file(pem, "application/x-pem-file", "leakguard-ca.pem")
        if path in CA_DER:
            der = load_ca(self.state_dir).cert.public_bytes(serialization.Encoding.DER)
            return _file(der, "application/x-x509-ca-cert", "leakguard-ca.crt")
        if path in PAC:
            pac = render_pac(self.services.policy.policy, _authority(request))
            return _file(pac.encode(), PAC_TYPE, None)
        if path in ("/", "/leakguard", "/leakguard/"):
            return _index(_authority(request))
        return _text(404, f"Not found. Try http://{_authority(request)}/\n")

    # -- is this request for us? -----------------------------------------------------------

    def _is_own(self, host: str, port: int) -> bool:
        master = getattr(ctx, "master", None)
        if self._listening is None:
            proxyserver = master.addons.get("proxyserver") if master else None
            if proxyserver is None:
                return False
            addresses = [(a[0], a[1]) for a in proxyserver.listen_addrs()]
            if not addresses:
                return False  # not listening yet: nothing is ours, and nothing is kept
            self._listening = addresses
        listening = [address for address, bound in self._listening if bound == port]
        if not listening:
            return False
        try:
            ip = host_ip(host)
        except ValueError:
            return False
        name = host.lower().rstrip(".")
        for bound in listening:
            try:
                address = plain(ipaddress.ip_address(bound.split("%", 1)[0]))
            except ValueError:
                continue
            if address.is_unspecified:  # 0.0.0.0 or ::, every address of this host
                if ip is None:
                    if name == "localhost":
                        return True
                elif ip.is_loopback or self._local_address(ip):
                    return True
            elif (ip is None and name == "localhost" and address.is_loopback) or ip == address:
                return True
        return False

    def _local_address(self, ip: IPAddress) -> bool:
        """An address of this host: one that a socket can bind to (cached)."""
        known = self._local.get(ip)
        if known is None:
            family = socket.AF_INET6 if isinstance(ip, ipaddress.IPv6Address) else socket.AF_INET
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                try:
                    probe.bind((str(ip), 0))
                    known = True
                except OSError:
                    known = False
            self._local[ip] = known
        return known


def _authority(request: http.Request) -> str:
    host = request.host
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{request.port}"


def _file(body: bytes, content_type: str, filename: str | None) -> http.Response:
    headers = {"Content-Type": content_type, "Cache-Control": "no-store"}
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return http.Response.make(200, body, headers)


def _text(status: int, text: str) -> http.Response:
    return http.Response.make(status, text.encode(), {"Content-Type": "text/plain; charset=utf-8"})


def _index(authority: str) -> http.Response:
    base = "http://" + html.escape(authority)
    page = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>leakguard</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto">
<h1>leakguard 数据防泄漏网关 · data-loss-prevention gateway</h1>
<ul>
<li><a href="{base}{CA_PEM}">根证书 CA certificate (PEM)</a> ·
    <a href="{base}{CA_DER[1]}">DER (.crt, Windows/Android)</a></li>
<li><a href="{base}{PAC[0]}">代理自动配置 proxy auto-config (PAC)</a>: {base}{PAC[0]}</li>
</ul>
<p>安装根证书后，浏览器即可通过网关访问 HTTPS 网站。
Install the CA certificate so that browsers accept HTTPS through the gateway.</p>
</body></html>
"""
    return http.Response.make(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})
