"""`leakguard firewall render`: the ruleset as text, from a policy directory and a config file.

Pure: no nft here (tests/firewall/test_apply.py loads what these render).
Policies are the shipped one (`rules/default`) with zones.yaml rewritten per case.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import load_config
from gateway.firewall import FirewallError, render, zone_networks
from rules.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "rules" / "default"

CONFIG = """\
version: 1
proxy:
  listen: "*:8080"
  mode: transparent
relay:
  listen: "*:2525"
firewall:
  interfaces:
    office: [eth1]
    restricted: [eth2]
    external: [eth0]
  resolvers: [198.51.100.53]
"""

ZONES_V6 = """\
version: 1
zones:
  office:
    cidrs: [10.0.0.0/8, "fd00:1::/48"]
  restricted:
    cidrs: [10.9.0.0/24, "fd00:1:0:9::/64"]
reach:
  - {from: office, to: external, ports: [80, 443], channels: [http, https, websocket]}
  - {from: office, to: external, ports: [25, 587], channels: [smtp]}
  - {from: office, to: restricted, ports: [22, 443], inspect: false}
"""

ZONES_OFFICE_ONLY = """\
version: 1
zones:
  office:
    cidrs: [192.168.10.0/24]
reach:
  - {from: office, to: external, ports: [443]}
  - {from: office, to: external, ports: [22], inspect: false}
"""


def _policy(tmp_path: Path, zones: str | None = None) -> Path:
    if zones is None:
        return SHIPPED
    directory = tmp_path / "policy"
    shutil.copytree(SHIPPED, directory, dirs_exist_ok=True)
    (directory / "zones.yaml").write_text(zones, encoding="utf-8")
    return directory


def _config(tmp_path: Path, text: str = CONFIG) -> Path:
    path = tmp_path / "leakguard.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _render(tmp_path: Path, config: str = CONFIG, zones: str | None = None) -> str:
    policy = load_policy(_policy(tmp_path, zones))
    return render(policy, load_config(_config(tmp_path, config)))


def _chain(text: str, name: str) -> list[str]:
    body = text.split(f"\tchain {name} {{\n", 1)[1].split("\n\t}", 1)[0]
    return [line.strip() for line in body.splitlines()]


def _elements(text: str, name: str) -> list[str]:
    block = text.split(f"\tset {name} {{\n", 1)[1].split("\n\t}", 1)[0]
    found = re.search(r"elements = \{ (.*) \}", block)
    return found[1].split(", ") if found else []


# -- the shipped policy on a three-interface host ----------------------------------------------


def test_the_file_replaces_one_inet_table_in_one_transaction(tmp_path: Path) -> None:
    text = _render(tmp_path)
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[:3] == [
        "table inet leakguard {}",
        "delete table inet leakguard",
        "table inet leakguard {",
    ]
    assert text.count("table inet ") == 3 and "table ip " not in text


def test_forward_drops_by_default_and_lets_established_traffic_back(tmp_path: Path) -> None:
    forward = _chain(_render(tmp_path), "forward")
    assert forward[0] == "type filter hook forward priority filter; policy drop;"
    assert forward[1] == "ct state established,related accept"
    assert forward[-1] == "goto drop_not_in_policy"  # counted and logged, not silent


def test_office_web_and_mail_to_external_are_redirected_for_both_families(tmp_path: Path) -> None:
    pre = _chain(_render(tmp_path), "prerouting")
    assert "type nat hook prerouting priority dstnat; policy accept;" in pre
    for fam, v in (("ip", 4), ("ip6", 6)):
        office = f'iifname "eth1" {fam} saddr @zone_office_v{v} {fam} daddr != @internal_v{v}'
        assert (
            f'{office} tcp dport {{ 80, 443 }} counter name "redirect_proxy" redirect to :8080'
            in pre
        )
        assert (
            f'{office} tcp dport {{ 25, 587 }} counter name "redirect_relay" redirect to :2525'
            in pre
        )
    # the shipped reach also names 465 (SMTPS): nothing here inspects it, so it is not forwarded
    assert any("465" in line and "not forwarded" in line for line in pre)
    assert not any("465" in line for line in _chain(_render(tmp_path), "forward"))


def test_ports_come_from_the_proxy_and_relay_listen_settings(tmp_path: Path) -> None:
    config = CONFIG.replace("*:8080", "*:3128").replace("*:2525", "*:25")
    text = _render(tmp_path, config)
    assert "redirect to :3128" in text and "redirect to :25" in text
    assert "tcp dport { 25, 3128 } ct status & dnat == 0 goto drop_direct" in text
    assert ":8080" not in text and "2525" not in text


def test_direct_connections_to_proxy_and_relay_ports_are_refused(tmp_path: Path) -> None:
    text = _render(tmp_path)
    assert (
        _chain(text, "input")[-1]
        == "tcp dport { 2525, 8080 } ct status & dnat == 0 goto drop_direct"
    )
    direct = _chain(text, "drop_direct")
    assert "meta l4proto tcp reject with tcp reset" in direct  # refused at once, not a timeout


def test_relay_clients_may_submit_to_the_relay_directly(tmp_path: Path) -> None:
    config = CONFIG + '  relay_clients: [10.1.0.25, "fd00::25"]\n'
    rules = _chain(_render(tmp_path, config), "input")
    assert rules.index("ip saddr @relay_clients_v4 tcp dport 2525 accept") < len(rules) - 1
    assert "ip6 saddr @relay_clients_v6 tcp dport 2525 accept" in rules
    assert _elements(_render(tmp_path, config), "relay_clients_v4") == ["10.1.0.25"]


def test_dns_only_to_the_resolvers(tmp_path: Path) -> None:
    forward = _chain(_render(tmp_path), "forward")
    dns = [line for line in forward if "th dport 53" in line]
    assert dns == [
        'iifname "eth1" ip saddr @zone_office_v4 oifname "eth0" ip daddr 198.51.100.53 '
        "meta l4proto { tcp, udp } th dport 53 accept",
        "meta l4proto { tcp, udp } th dport 53 goto drop_dns",
    ]  # the restricted zone may not reach external, so it may not ask an external resolver
    assert forward.index(dns[1]) < min(i for i, x in enumerate(forward) if "# reach" in x)


def test_quic_is_dropped_before_any_allowance(tmp_path: Path) -> None:
    forward = _chain(_render(tmp_path), "forward")
    assert forward.index("udp dport 443 goto drop_quic") < forward.index(
        next(x for x in forward if x.endswith("# reach office->restricted"))
    )


def test_restricted_and_external_are_kept_apart(tmp_path: Path) -> None:
    forward = _chain(_render(tmp_path), "forward")
    assert 'iifname "eth2" oifname "eth0" goto drop_restricted_to_external' in forward
    assert 'iifname "eth0" goto drop_external_to_internal' in forward
    assert not any(
        x.startswith('iifname "eth2"') and '"eth0"' in x and "accept" in x for x in forward
    )
    assert not any(x.startswith('iifname "eth0"') and "accept" in x for x in forward)


def test_zone_to_zone_allowances_are_the_policys_reach_entries(tmp_path: Path) -> None:
    forward = _chain(_render(tmp_path), "forward")
    allowed = [x for x in forward if "# reach" in x]
    assert allowed == [
        'iifname "eth1" ip saddr @zone_office_v4 oifname "eth1" ip daddr @zone_office_v4 accept'
        "  # reach office->office",
        'iifname "eth1" ip6 saddr @zone_office_v6 oifname "eth1" ip6 daddr @zone_office_v6 accept'
        "  # reach office->office",
        'iifname "eth1" ip saddr @zone_office_v4 oifname "eth2" ip daddr @zone_restricted_v4 '
        "meta l4proto { tcp, udp } th dport { 22, 443 } accept  # reach office->restricted",
        'iifname "eth2" ip saddr @zone_restricted_v4 oifname "eth2" ip daddr @zone_restricted_v4 '
        "accept  # reach restricted->restricted",
    ]


def test_every_drop_is_counted_and_logged_with_its_reason(tmp_path: Path) -> None:
    text = _render(tmp_path)
    reasons = re.findall(r"goto drop_(\w+)", text)
    assert set(reasons) == {
        "invalid", "quic", "dns", "direct", "restricted_to_external", "external_to_internal",
        "not_in_policy",
    }  # fmt: skip
    for reason in set(reasons):
        chain = _chain(text, f"drop_{reason}")
        assert f'counter name "drop_{reason}"' in chain
        prefix = reason.replace("_", "-")
        assert any(f'log prefix "leakguard drop {prefix}: "' in x for x in chain), chain
        assert chain[-1] == "drop"
        assert f"counter drop_{reason} {{}}" in text


def test_restricted_networks_are_carved_out_of_the_office_set(tmp_path: Path) -> None:
    text = _render(tmp_path)
    office = [ipaddress.ip_network(e) for e in _elements(text, "zone_office_v4")]
    restricted = ipaddress.ip_network("10.9.0.0/24")
    assert not any(n.overlaps(restricted) for n in office)
    ten = [n for n in office if n.subnet_of(ipaddress.ip_network("10.0.0.0/8"))]
    assert sum(n.num_addresses for n in ten) == 2**24 - 256  # all of 10/8 but the /24
    assert _elements(text, "zone_restricted_v4") == ["10.9.0.0/24"]


def test_rendering_is_deterministic(tmp_path: Path) -> None:
    assert _render(tmp_path) == _render(tmp_path)


# -- other shapes ------------------------------------------------------------------------------


def test_ipv6_zones_get_ip6_rules(tmp_path: Path) -> None:
    config = CONFIG.replace("[198.51.100.53]", '[198.51.100.53, "2001:db8::53"]')
    text = _render(tmp_path, config, ZONES_V6)
    assert _elements(text, "zone_restricted_v6") == ["fd00:1:0:9::/64"]
    office6 = [ipaddress.ip_network(e) for e in _elements(text, "zone_office_v6")]
    assert sum(n.num_addresses for n in office6) == 2**80 - 2**64
    forward = _chain(text, "forward")
    assert (
        'iifname "eth1" ip6 saddr @zone_office_v6 oifname "eth2" ip6 daddr @zone_restricted_v6 '
        "meta l4proto { tcp, udp } th dport { 22, 443 } accept  # reach office->restricted"
    ) in forward
    assert any("ip6 daddr 2001:db8::53" in x and "th dport 53 accept" in x for x in forward)
    # this policy has no self-reach: a zone's two sides are not forwarded between
    assert not any("# reach office->office" in x for x in forward)


def test_without_a_restricted_zone(tmp_path: Path) -> None:
    config = CONFIG.replace("    restricted: [eth2]\n", "").replace("eth1", "lan0")
    text = _render(tmp_path, config, ZONES_OFFICE_ONLY)
    body = "\n".join(x for x in text.splitlines() if not x.startswith("#"))
    assert "restricted" not in body and "eth2" not in body
    forward = _chain(text, "forward")
    # inspect: false to external is the policy's explicit choice: forwarded as written
    assert (
        'iifname "lan0" ip saddr @zone_office_v4 oifname "eth0" ip daddr != @internal_v4 '
        "meta l4proto { tcp, udp } th dport 22 accept  # reach office->external"
    ) in forward
    pre = _chain(text, "prerouting")
    assert any('tcp dport 443 counter name "redirect_proxy"' in x for x in pre)
    assert not any("tcp dport { 80, 443 }" in x for x in pre)  # port 80 is not in this reach
    assert not any("redirect_relay" in x for x in pre)  # no mail entry: no mail redirect
    # office has no IPv6 network here: no ip6 rule for it
    assert not any("ip6 saddr @zone_office_v6" in x for x in pre + forward)


def test_a_policy_zone_without_interfaces_here_gets_no_rules(tmp_path: Path) -> None:
    config = CONFIG.replace("    restricted: [eth2]\n", "")
    text = _render(tmp_path, config)
    assert "zone_restricted" not in text and "drop_restricted" not in text
    # its networks still count as internal: never treated as external
    assert "10.0.0.0/8" in _elements(text, "internal_v4")


def test_several_interfaces_per_zone(tmp_path: Path) -> None:
    config = CONFIG.replace("office: [eth1]", "office: [eth1, eth3, br-lan]").replace(
        "external: [eth0]", "external: [ppp0, eth0]"
    )
    text = _render(tmp_path, config)
    office = '{ "eth1", "eth3", "br-lan" }'
    assert f"iifname {office} ip saddr @zone_office_v4 ip daddr != @internal_v4" in text
    assert f'iifname {office} ip saddr @zone_office_v4 oifname {{ "ppp0", "eth0" }}' in text
    assert 'iifname "eth2" oifname { "ppp0", "eth0" } goto drop_restricted_to_external' in text
    assert 'iifname { "ppp0", "eth0" } goto drop_external_to_internal' in text


def test_a_disabled_relay_gets_no_redirect_and_its_port_no_guard(tmp_path: Path) -> None:
    text = _render(
        tmp_path, CONFIG.replace('relay:\n  listen: "*:2525"', "relay:\n  enabled: false")
    )
    assert 'redirect_relay" redirect' not in text
    assert "tcp dport 8080 ct status & dnat == 0 goto drop_direct" in text  # mail is then dropped


def test_zone_networks_follow_longest_prefix(tmp_path: Path) -> None:
    nets = zone_networks(load_policy(_policy(tmp_path, ZONES_V6)))
    assert ipaddress.ip_address("10.9.0.5") not in ipaddress.ip_network("10.0.0.0/8") or all(
        ipaddress.ip_address("10.9.0.5") not in n for n in nets["office"]
    )
    assert any(ipaddress.ip_address("10.9.0.5") in n for n in nets["restricted"])
    assert any(ipaddress.ip_address("10.1.2.3") in n for n in nets["office"])


# -- what is refused, with lines ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "line", "words"),
    [
        (
            CONFIG.replace("restricted: [eth2]", "dmz: [eth2]"),
            10,
            "zone 'dmz' is not in the policy",
        ),
        (
            CONFIG.replace("restricted: [eth2]", "restricted: [eth1]"),
            10,
            "eth1 is already in zone office",
        ),
        (CONFIG.replace("[eth2]", '["eth 2"]'), 10, "'eth 2' is not an interface name"),
        (CONFIG.replace("[eth2]", "[averyveryverylongname]"), 10, "is not an interface name"),
        (CONFIG.replace("    external: [eth0]\n", ""), 9, "no `external` zone"),
        (CONFIG.replace("198.51.100.53", "dns.example"), 12, "'dns.example' is not an IP address"),
        (CONFIG.replace("resolvers:", "resolver:"), 12, "did you mean `resolvers`?"),
        (CONFIG.replace("  mode: transparent\n", ""), 7, "set `proxy.mode: transparent`"),
        (CONFIG.replace('"*:8080"', "127.0.0.1:8080"), 8, "listen on every address"),
        (CONFIG.replace("office: [eth1]", "office: []"), 9, "empty list"),
    ],
)
def test_a_bad_firewall_section_is_refused_with_its_line(
    tmp_path: Path, capsys, config: str, line: int, words: str
) -> None:
    path = _config(tmp_path, config)
    status = main(["firewall", "render", "--config", str(path), "--policy", str(SHIPPED)])
    err = capsys.readouterr().err
    assert status == 2
    assert f"{path}:{line}:" in err and words in err, err


def test_a_config_without_a_firewall_section_is_refused(tmp_path: Path) -> None:
    config = CONFIG.split("firewall:")[0]
    with pytest.raises(FirewallError) as refused:
        render(load_policy(SHIPPED), load_config(_config(tmp_path, config)))
    assert "no `firewall:` section" in str(refused.value)


def test_render_prints_the_file_and_names_its_sources(tmp_path: Path, capsys) -> None:
    path = _config(tmp_path)
    assert main(["firewall", "render", "--config", str(path), "--policy", str(SHIPPED)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("#!/usr/sbin/nft -f\n")
    assert f"# policy: {SHIPPED}" in out and f"# config: {path}" in out
    assert out == render(load_policy(SHIPPED), load_config(path))


def test_the_example_config_renders(capsys) -> None:
    example = ROOT / "deploy" / "gateway-host.yaml"
    assert main(["firewall", "render", "--config", str(example), "--policy", str(SHIPPED)]) == 0
    assert "redirect to :" in capsys.readouterr().out


def test_an_allowance_from_external_comes_before_the_external_drop(tmp_path: Path) -> None:
    zones = ZONES_V6 + "  - {from: external, to: restricted, ports: [8443], inspect: false}\n"
    forward = _chain(_render(tmp_path, CONFIG, zones), "forward")
    published = (
        'iifname "eth0" ip saddr != @internal_v4 oifname "eth2" ip daddr @zone_restricted_v4 '
        "meta l4proto { tcp, udp } th dport 8443 accept  # reach external->restricted"
    )
    assert forward.index(published) < forward.index('iifname "eth0" goto drop_external_to_internal')
