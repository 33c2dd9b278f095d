"""The proxy auto-config (PAC) file, built from the policy's zones.

    render_pac(policy, proxy="10.0.0.1:8080") -> str   (JavaScript, FindProxyForURL)

Everything goes through the proxy — with no DIRECT fallback, so a proxy that
is down fails closed instead of sending traffic around it — except traffic
that never crosses the gateway: plain host names (not IPv6 literals or dotless
numbers, which are addresses), localhost and 127.x.y.z literals (not names that
merely start with `127.`), and destinations in the client's own zone when the
policy lets that zone reach itself (an IPv4 literal in the zone's networks, or a
name under the zone's `domains`). Zones
are matched longest prefix first, as the policy does, so a restricted /24
inside the office's 10/8 is not taken for office. The PAC never resolves
names (`isInNet` on a name would make every request wait for DNS).
"""

from __future__ import annotations

import ipaddress
import json

from rules.policy import Policy


def render_pac(policy: Policy, proxy: str) -> str:
    self_reach = sorted({r.source for r in policy.reach if r.source == r.destination})
    networks = sorted(
        (
            (net.prefixlen, str(net.network_address), str(net.netmask), zone.name)
            for zone in policy.zones
            for net in zone.cidrs
            if isinstance(net, ipaddress.IPv4Network)
        ),
        key=lambda n: -n[0],
    )
    domains = sorted(
        ((d.lstrip("."), zone.name) for zone in policy.zones for d in zone.domains),
        key=lambda d: -len(d[0]),
    )
    nets_js = ",\n".join(f"    {json.dumps([a, m, z])}" for _, a, m, z in networks)
    domains_js = ",\n".join(f"    {json.dumps([d, z])}" for d, z in domains)
    return f"""\
// leakguard proxy auto-config, generated from the policy ({policy.source or "embedded"}).
// Everything goes through the gateway; no DIRECT fallback, so a stopped proxy fails closed.
var PROXY = {json.dumps("PROXY " + proxy)};
var SELF_REACH = {json.dumps(self_reach)};
var NETWORKS = [  // longest prefix first
{nets_js}
];
var DOMAINS = [  // most specific first
{domains_js}
];

function zoneOfAddress(ip) {{
  for (var i = 0; i < NETWORKS.length; i++) {{
    if (isInNet(ip, NETWORKS[i][0], NETWORKS[i][1])) return NETWORKS[i][2];
  }}
  return "external";
}}

function zoneOfName(host) {{
  for (var i = 0; i < DOMAINS.length; i++) {{
    var d = DOMAINS[i][0];
    if (host == d || dnsDomainIs(host, "." + d)) return DOMAINS[i][1];
  }}
  return null;
}}

function isPlainName(host) {{
  // isPlainHostName is true for IPv6 literals and dotless numbers (2130706433,
  // 0xcb007101) too: those are addresses, anywhere, and must not go DIRECT.
  return isPlainHostName(host) && host.indexOf(":") < 0 &&
    !/^(0x[0-9a-f]*|[0-9]+)$/.test(host);
}}

function FindProxyForURL(url, host) {{
  host = host.toLowerCase();
  var literal = /^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$/.test(host);
  if (isPlainName(host) || host == "localhost" || (literal && shExpMatch(host, "127.*")) ||
      host == "::1" || host == "[::1]") {{
    return "DIRECT";
  }}
  var mine = zoneOfAddress(myIpAddress());
  if (SELF_REACH.indexOf(mine) < 0) return PROXY;
  var theirs = literal ? zoneOfAddress(host) : zoneOfName(host);
  return theirs == mine ? "DIRECT" : PROXY;
}}
"""
