"""Property: a policy that loads round-trips through `leakguard rules explain --yaml`."""

from __future__ import annotations

import io
import re
from contextlib import redirect_stdout
from pathlib import Path

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gateway.cli import main as cli
from rules.detectors import DETECTORS
from rules.policy import PolicyError, load_policy
from rules.policy.dump import dump_yaml
from rules.policy.explain import explain

DEFAULT = Path(__file__).resolve().parents[2] / "rules" / "default"
NAMES = st.sampled_from(["office", "restricted", "dmz", "lab", "branch-2"])
NETS = st.sampled_from(
    [
        "10.0.0.0/8",
        "10.9.0.0/24",
        "192.168.0.0/16",
        "fd00::/8",
        "172.16.0.0/12",
        "10.9.0.128/25",
        "127.0.0.0/8",
    ]
)
DOMAINS = st.sampled_from(
    [
        "qq.com",
        "mail.qq.com",
        "example.com",
        "pan.baidu.com",
        "lawfirm.example",
        "court.example",
        "xn--fiqs8s.example",
    ]
)
CHANNELS = st.sampled_from(["http", "https", "websocket", "smtp"])
LEVELS = st.sampled_from(["core", "important", "basic"])
ACTIONS = st.sampled_from(["allow", "report", "mask", "block"])


@st.composite
def wire_policies(draw) -> dict[str, dict]:
    zone_names = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
    zones = {
        z: {"cidrs": draw(st.lists(NETS, min_size=1, max_size=2, unique=True))} for z in zone_names
    }
    all_zones = [*zone_names, "external"]
    reach = [
        {
            "from": draw(st.sampled_from(all_zones)),
            "to": draw(st.sampled_from(all_zones)),
            **(
                {"ports": draw(st.lists(st.integers(1, 65535), max_size=3, unique=True))}
                if draw(st.booleans())
                else {}
            ),
            **(
                {"channels": draw(st.lists(CHANNELS, min_size=1, unique=True))}
                if draw(st.booleans())
                else {}
            ),
        }
        for _ in range(draw(st.integers(0, 3)))
    ]
    cat_names = draw(
        st.lists(st.sampled_from(["webmail", "netdisk", "ai", "paste"]), max_size=3, unique=True)
    )
    categories = {
        c: {"domains": draw(st.lists(DOMAINS, min_size=1, max_size=3, unique=True))}
        for c in cat_names
    }
    detectors = list(DETECTORS)
    draw(st.randoms()).shuffle(detectors)
    class_names = draw(
        st.lists(
            st.sampled_from(["identity", "financial", "contact", "misc"]),
            min_size=1,
            max_size=4,
            unique=True,
        )
    )
    classes = {}
    for i, name in enumerate(class_names):
        chunk = detectors[i :: len(class_names)]
        classes[name] = {"level": draw(LEVELS), "detectors": chunk}
        if draw(st.booleans()):
            classes[name]["bulk"] = draw(st.integers(1, 100))
    parties = {}
    for pid in draw(
        st.lists(st.sampled_from(["law", "court", "partner"]), max_size=2, unique=True)
    ):
        parties[pid] = {
            "name": pid.title(),
            "mail_domains": [f"{pid}.example"],
            "receives": draw(st.lists(st.sampled_from(class_names), min_size=1, unique=True)),
            "valid_until": "2030-01-01",
        }
        if draw(st.booleans()):
            parties[pid]["encrypt_mail"] = "always"
    rules = []
    for i in range(draw(st.integers(0, 8))):
        when: dict = {}
        if draw(st.booleans()):
            when["destination_zone"] = draw(
                st.lists(st.sampled_from(all_zones), min_size=1, unique=True)
            )
        if cat_names and draw(st.booleans()):
            when["category"] = draw(st.lists(st.sampled_from(cat_names), min_size=1, unique=True))
        if draw(st.booleans()):
            when["class"] = draw(st.lists(st.sampled_from(class_names), min_size=1, unique=True))
        if draw(st.booleans()):
            when["level"] = draw(st.lists(LEVELS, min_size=1, unique=True))
        if draw(st.booleans()):
            when["min_distinct"] = draw(st.integers(1, 20))
        if parties and draw(st.booleans()):
            when["party"] = draw(st.sampled_from(["any", "none", sorted(parties)]))
        if draw(st.booleans()):
            when["channel"] = draw(st.lists(CHANNELS, min_size=1, unique=True))
        rule = {"id": f"r{i}", "action": draw(ACTIONS)}
        if when:
            rule["when"] = when
        if draw(st.booleans()):
            rule["mode"] = "report"
        rules.append(rule)
    return {
        "zones.yaml": {"version": 1, "zones": zones, "reach": reach},
        "destinations.yaml": {"version": 1, "categories": categories},
        "parties.yaml": {"version": 1, "parties": parties},
        "classes.yaml": {"version": 1, "classes": classes},
        "rules.yaml": {
            "version": 1,
            "mode": draw(st.sampled_from(["enforce", "report"])),
            "rules": rules,
        },
    }


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def _explained_yaml(directory: Path) -> dict[str, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli(["rules", "explain", "--yaml", str(directory)]) == 0
    parts = re.split(r"^# --- (\S+)\n", out.getvalue(), flags=re.M)[1:]
    return dict(zip(parts[::2], parts[1::2], strict=True))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(wire=wire_policies())
def test_a_policy_that_loads_round_trips_through_explain(tmp_path_factory, wire) -> None:
    original_dir = _write(
        tmp_path_factory.mktemp("p"), {name: dump_yaml(doc) for name, doc in wire.items()}
    )
    try:
        original = load_policy(original_dir)
    except PolicyError:
        assume(False)
        return
    explained = _explained_yaml(original_dir)
    assert sorted(explained) == sorted(wire)
    again = load_policy(_write(tmp_path_factory.mktemp("q"), explained))
    assert again == original
    # provenance differs (directory, line numbers); the meaning must not
    strip = re.compile(r" \(line \d+\)|^Policy from .*$|\.yaml:\d+:", re.M)
    assert strip.sub("", explain(again)) == strip.sub("", explain(original))


def test_the_shipped_policy_round_trips_through_explain(tmp_path: Path) -> None:
    explained = _explained_yaml(DEFAULT)
    again = load_policy(_write(tmp_path / "again", explained))
    assert again == load_policy(DEFAULT)
    # the canonical form is itself stable
    assert _explained_yaml(tmp_path / "again") == explained
    assert yaml.safe_load(explained["rules.yaml"])["rules"][0]["id"] == "uninspectable-to-external"
