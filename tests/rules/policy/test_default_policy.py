"""Decision tables for the shipped default policy (rules/default).

Each row: content (text scanned by the real engine, a Problem, or a tuple of them),
a Context, and the verdict expected: action, deciding rule, text in the reason, and
optionally other Verdict attributes. Fixed time WHEN: both agreements are in force.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, NamedTuple

import pytest

from gateway.rules_command import SHIPPED_POLICY as DEFAULT_DIR
from rules.policy import Action, Context, evaluate
from tests.rules.policy.common import (
    ARCHIVE,
    BUSINESS_TEXT,
    CARD_TEXT,
    CORE_TEXT,
    ID,
    ID2,
    ID_TEXT,
    PHONE_TEXT,
    RAW_VALUES,
    UNREADABLE,
    mail,
    phones,
    scan,
    web,
)

OFFICE = "10.1.2.3"
RESTRICTED = "10.9.0.5"
OUTSIDE = "203.0.113.10"
LAW_FIRM = "x@lawfirm.example"
COURT = "x@court.example"
PORTAL = "portal.lawfirm.example"
EXPIRED = datetime(2028, 1, 1, 9, 0, tzinfo=UTC)
NOT_YET = datetime(2025, 12, 31, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai: still 2025


class Case(NamedTuple):
    content: Any
    ctx: Context
    action: Action
    rule: str
    reason: str  # a substring of verdict.reason
    extra: dict[str, Any] = {}  # noqa: RUF012 — other Verdict attributes (read only)


CASES: dict[str, Case] = {}

# -- a resident ID to personal webmail, from every kind of office address ---------------

OFFICE_SOURCES = {
    "loopback-v4": "127.0.0.1",
    "10-x": "10.20.30.40",
    "172-16-x": "172.16.5.4",
    "192-168-x": "192.168.1.20",
    "loopback-v6": "::1",
    "fc00": "fc00::1",
    "fd-ula": "fd12:3456::1",
    "v4-mapped-office": "::ffff:192.168.1.20",
}
PERSONAL_MESSAGE = "已阻止：客户信息不得发送至个人邮箱、即时通讯、网盘、粘贴站或 AI 对话。"
DESTINATIONS = {
    "no-dest-ip": (None, "external"),
    "dest-outside": ("203.0.113.25", "external"),
    "dest-loopback": ("127.0.0.1", "office"),  # a loopback test: the name says webmail
    "dest-office": ("10.200.0.1", "office"),
}
for src_name, src in OFFICE_SOURCES.items():
    for host in ("mail.qq.com", "wx.mail.qq.com"):
        for dest_name, (dest, zone) in DESTINATIONS.items():
            CASES[f"id-to-{host}-from-{src_name}-{dest_name}"] = Case(
                ID_TEXT,
                web(src, host, dest=dest),
                Action.BLOCK,
                "identifying-to-personal-channels",
                f"cn_resident_id ×1 (identity, important) to {host}; zone {zone}; "
                "category personal-webmail",
                {"message": PERSONAL_MESSAGE + f"Blocked: client information cannot go to {host}."},
            )

CASES |= {
    # -- other personal channels --------------------------------------------------------
    "id-to-ai-chat": Case(
        ID_TEXT, web(OFFICE, "chatgpt.com"), Action.BLOCK, "identifying-to-personal-channels",
        "category ai-chat, cross-border",
    ),
    "id-by-websocket-to-wechat": Case(
        ID_TEXT, web(OFFICE, "wx.qq.com", channel="websocket"), Action.BLOCK,
        "identifying-to-personal-channels", "category instant-messaging",
    ),
    "business-documents-to-netdisk": Case(
        BUSINESS_TEXT, web(OFFICE, "pan.baidu.com"), Action.BLOCK,
        "identifying-to-personal-channels",
        "business_documents ×1 (business-secret, important) to pan.baidu.com",
    ),
    "phone-to-paste-site": Case(
        PHONE_TEXT, web(OFFICE, "pastebin.com"), Action.BLOCK,
        "identifying-to-personal-channels", "cn_mobile ×1 (contact, basic)",
    ),
    "id-by-mail-to-gmail": Case(
        ID_TEXT, mail(OFFICE, "someone@gmail.com"), Action.BLOCK,
        "identifying-to-personal-channels",
        "to s***@gmail.com; zone external; category cross-border, personal-webmail",
    ),
    "id-by-mail-to-qq-upper-case": Case(
        ID_TEXT, mail(OFFICE, "Someone@QQ.com"), Action.BLOCK,
        "identifying-to-personal-channels", "to s***@qq.com; zone external",
    ),
    # -- reach ---------------------------------------------------------------------------
    "restricted-to-external": Case(
        ID_TEXT, web(RESTRICTED, "www.example.com", dest=OUTSIDE), Action.BLOCK,
        "reach:restricted->external",
        "zone restricted may not reach zone external (www.example.com)",
    ),
    "restricted-to-external-nothing-found": Case(
        "", web(RESTRICTED, "www.example.com"), Action.BLOCK, "reach:restricted->external",
        "zone restricted may not reach zone external",
    ),
    "restricted-v4-mapped-to-external": Case(
        "", web("::ffff:10.9.0.5", "www.example.com"), Action.BLOCK,
        "reach:restricted->external", "zone restricted may not reach",
    ),
    "restricted-to-office": Case(
        "", web(RESTRICTED, "oa.firm.example", dest="10.1.0.80"), Action.BLOCK,
        "reach:restricted->office", "zone restricted may not reach zone office",
    ),
    "external-to-restricted": Case(
        "", web("198.51.100.7", "db.firm.example", dest=RESTRICTED), Action.BLOCK,
        "reach:external->restricted", "zone external may not reach zone restricted",
    ),
    "no-source-address-is-external": Case(
        "", web(None, "www.example.com"), Action.BLOCK, "reach:external->external",
        "zone external may not reach zone external",
    ),
    "office-to-external-ssh": Case(
        "", web(OFFICE, "git.example.com", dest=OUTSIDE, port=22), Action.BLOCK,
        "reach:office->external",
        "zone office may reach zone external only ports 80,443 over http/https/websocket; "
        "or ports 25,465,587 over smtp, not on port 22 over https (git.example.com)",
    ),
    "office-to-external-smtp-on-web-port": Case(
        "", mail(OFFICE, "a@example.com", port=443), Action.BLOCK, "reach:office->external",
        "not on port 443 over smtp",
    ),
    "office-to-restricted-https": Case(
        ID_TEXT, web(OFFICE, "crm.firm.example", dest=RESTRICTED), Action.ALLOW, "default",
        "no rule matched; the policy's default action is allow",
    ),
    "office-to-restricted-other-port": Case(
        "", web(OFFICE, "crm.firm.example", dest=RESTRICTED, port=8080), Action.BLOCK,
        "reach:office->restricted", "only ports 22,443, not on port 8080 over https",
    ),
    # -- core data and content that cannot be inspected ----------------------------------
    "core-to-web": Case(
        CORE_TEXT, web(OFFICE, "www.example.com", dest=OUTSIDE), Action.BLOCK,
        "core-never-leaves", "core_marking ×1 (core-secret, core) to www.example.com",
        {"message": "已阻止：核心数据不得外发。Blocked: core data never leaves the firm."},
    ),
    "core-to-law-firm-portal": Case(
        CORE_TEXT, web(OFFICE, PORTAL), Action.BLOCK, "core-never-leaves",
        "approved party example-law-firm",
    ),
    "core-by-mail-to-court": Case(
        (ID_TEXT, CORE_TEXT), mail(OFFICE, COURT), Action.BLOCK, "core-never-leaves",
        "core_marking ×1 (core-secret, core)",
    ),
    "encrypted-archive-to-web": Case(
        ARCHIVE, web(OFFICE, "www.example.com"), Action.BLOCK, "uninspectable-to-external",
        "content that could not be inspected to www.example.com",
    ),
    "encrypted-archive-to-law-firm": Case(
        (ARCHIVE, ID_TEXT), mail(OFFICE, LAW_FIRM), Action.BLOCK, "uninspectable-to-external",
        "content that could not be inspected",
    ),
    "unreadable-pdf-to-web": Case(
        UNREADABLE, web(OFFICE, "www.example.com"), Action.BLOCK, "uninspectable-to-external",
        "content that could not be inspected",
    ),
    "encrypted-archive-inside-office": Case(
        ARCHIVE, web(OFFICE, "oa.firm.example", dest="10.1.0.80"), Action.ALLOW, "default",
        "no rule matched",
    ),
    # -- approved parties ------------------------------------------------------------------
    "id-by-mail-to-law-firm": Case(
        ID_TEXT, mail(OFFICE, LAW_FIRM), Action.ENCRYPT, "important-to-party-by-mail",
        "cn_resident_id ×1 (identity, important) to x***@lawfirm.example; zone external; "
        "approved party example-law-firm",
        {"party": "example-law-firm", "encrypt_scope": "attachments", "mask": ()},
    ),
    "id-by-mail-to-court": Case(
        ID_TEXT, mail(OFFICE, "clerk@court.example"), Action.ENCRYPT,
        "important-to-party-by-mail", "approved party example-court",
        {"party": "example-court", "encrypt_scope": "message"},
    ),
    "phone-only-by-mail-to-court": Case(
        PHONE_TEXT, mail(OFFICE, COURT), Action.ENCRYPT, "basic-to-external-recorded",
        "cn_mobile ×1 (contact, basic) to x***@court.example",
        {"party": "example-court", "encrypt_scope": "message"},
    ),
    "nothing-by-mail-to-court": Case(
        "", mail(OFFICE, COURT), Action.ENCRYPT, "default", "no rule matched",
        {"party": "example-court", "encrypt_scope": "message"},
    ),
    "phones-by-mail-to-law-firm": Case(
        phones(2), mail(OFFICE, LAW_FIRM), Action.MASK, "basic-to-external-recorded",
        "2 distinct values: cn_mobile ×2 (contact, basic)",
        {"party": "example-law-firm", "encrypt_scope": ""},
    ),
    "phones-to-law-firm-portal": Case(
        PHONE_TEXT, web(OFFICE, PORTAL), Action.MASK, "basic-to-external-recorded",
        "to portal.lawfirm.example", {"party": "example-law-firm"},
    ),
    "bulk-phones-to-law-firm-portal": Case(
        phones(25), web(OFFICE, PORTAL), Action.MASK, "basic-to-external-recorded",
        "25 distinct values", {"party": "example-law-firm"},
    ),
    "id-and-phone-by-mail-to-law-firm": Case(
        (ID_TEXT, PHONE_TEXT), mail(OFFICE, LAW_FIRM), Action.ENCRYPT,
        "important-to-party-by-mail", "cn_resident_id ×1 (identity, important)",
        {"party": "example-law-firm", "encrypt_scope": "attachments"},
    ),
    "id-over-https-to-law-firm-portal": Case(
        ID_TEXT, web(OFFICE, PORTAL, dest="203.0.113.80"), Action.ALLOW,
        "important-to-party-over-https", "to portal.lawfirm.example; zone external; "
        "approved party example-law-firm",
        {"party": "example-law-firm", "mask": (), "message": ""},
    ),
    "card-over-https-to-law-firm-portal": Case(
        CARD_TEXT, web(OFFICE, "PORTAL.lawfirm.example."), Action.ALLOW,
        "important-to-party-over-https", "cn_bank_card ×1 (financial, important)",
    ),
    "id-over-http-to-law-firm-portal": Case(
        ID_TEXT, web(OFFICE, PORTAL, port=80, channel="http"), Action.BLOCK,
        "important-elsewhere", "approved party example-law-firm",
    ),
    "id-to-law-firm-other-host": Case(
        ID_TEXT, web(OFFICE, "www.lawfirm.example"), Action.BLOCK, "important-elsewhere",
        "to www.lawfirm.example; zone external",
    ),
    # -- ordinary external destinations ----------------------------------------------------
    "id-to-ordinary-host": Case(
        ID_TEXT, web(OFFICE, "www.example.com", dest=OUTSIDE), Action.BLOCK,
        "important-elsewhere", "cn_resident_id ×1 (identity, important) to www.example.com",
        {"message": "已阻止：重要数据只能加密发送给已批准的合作方。"
         "Blocked: important data goes only to approved parties, encrypted."},
    ),
    "id-to-bare-address": Case(
        ID_TEXT, web(OFFICE, None, dest=OUTSIDE), Action.BLOCK, "important-elsewhere",
        f"to {OUTSIDE}; zone external",
    ),
    "id-by-mail-to-company": Case(
        ID_TEXT, mail(OFFICE, "buyer@example.com"), Action.BLOCK, "important-elsewhere",
        "to b***@example.com",
    ),
    "two-ids-to-ordinary-host": Case(
        (ID_TEXT, f"again {ID}", f"身份证 {ID2}"), web(OFFICE, "www.example.com"),
        Action.BLOCK, "important-elsewhere", "2 distinct values: cn_resident_id ×2 (identity",
    ),
    "business-documents-to-ordinary-host": Case(
        BUSINESS_TEXT, web(OFFICE, "www.example.com"), Action.BLOCK, "important-elsewhere",
        "business_documents ×1",
    ),
    "25-phones-to-ordinary-host": Case(
        phones(25), web(OFFICE, "www.example.com", dest=OUTSIDE), Action.BLOCK,
        "bulk-contacts-to-external", "25 distinct values: cn_mobile ×25 (contact, basic)",
    ),
    "20-phones-is-bulk": Case(
        phones(20), web(OFFICE, "www.example.com"), Action.BLOCK, "bulk-contacts-to-external",
        "20 distinct values",
    ),
    "19-phones-is-not-bulk": Case(
        phones(19), web(OFFICE, "www.example.com"), Action.REPORT, "basic-to-external-recorded",
        "19 distinct values",
    ),
    "the-same-phone-25-times-is-one-value": Case(
        "\n".join([PHONE_TEXT] * 25), web(OFFICE, "www.example.com"), Action.REPORT,
        "basic-to-external-recorded", "1 distinct value: cn_mobile ×1",
    ),
    "one-phone-to-ordinary-host": Case(
        PHONE_TEXT, web(OFFICE, "www.example.com", dest=OUTSIDE), Action.REPORT,
        "basic-to-external-recorded", "cn_mobile ×1 (contact, basic) to www.example.com",
        {"message": "Sent and recorded (rule basic-to-external-recorded)."},
    ),
    "nothing-to-ordinary-host": Case(
        "", web(OFFICE, "www.example.com", dest=OUTSIDE), Action.ALLOW, "default",
        "no rule matched; the policy's default action is allow",
        {"findings": (), "mask": ()},
    ),
    # -- internal: the default policy has no zone mail domain, so the firm's own mail
    #    domain is an external destination like any other (operators must add theirs).
    "id-by-internal-mail-is-external": Case(
        ID_TEXT, mail(OFFICE, "colleague@firm.example"), Action.BLOCK, "important-elsewhere",
        "to c***@firm.example; zone external",
    ),
    "id-to-office-web-server": Case(
        ID_TEXT, web(OFFICE, "oa.firm.example", dest="10.1.0.80"), Action.ALLOW, "default",
        "no rule matched",
    ),
    # -- agreements out of force -------------------------------------------------------------
    "id-by-mail-to-law-firm-expired": Case(
        ID_TEXT, mail(OFFICE, LAW_FIRM, when=EXPIRED), Action.BLOCK, "important-elsewhere",
        "(agreement of party example-law-firm expired on 2027-12-31: treated as unapproved)",
        {"party": None},
    ),
    "id-to-law-firm-portal-expired": Case(
        ID_TEXT, web(OFFICE, PORTAL, when=EXPIRED), Action.BLOCK, "important-elsewhere",
        "expired on 2027-12-31",
    ),
    "phone-to-law-firm-expired-is-not-masked": Case(
        PHONE_TEXT, mail(OFFICE, LAW_FIRM, when=EXPIRED), Action.REPORT,
        "basic-to-external-recorded", "expired on 2027-12-31", {"mask": (), "party": None},
    ),
    "bulk-phones-to-law-firm-expired": Case(
        phones(25), mail(OFFICE, LAW_FIRM, when=EXPIRED), Action.BLOCK,
        "bulk-contacts-to-external", "expired on 2027-12-31",
    ),
    "nothing-to-law-firm-expired": Case(
        "", mail(OFFICE, LAW_FIRM, when=EXPIRED), Action.ALLOW, "default",
        "default action is allow (agreement of party example-law-firm expired on 2027-12-31",
    ),
    "id-by-mail-to-law-firm-not-yet": Case(
        ID_TEXT, mail(OFFICE, LAW_FIRM, when=NOT_YET), Action.BLOCK, "important-elsewhere",
        "agreement of party example-law-firm is in force only from 2026-01-01",
    ),
    "last-minute-in-shanghai": Case(
        ID_TEXT, mail(OFFICE, LAW_FIRM, when=datetime(2027, 12, 31, 15, 59, tzinfo=UTC)),
        Action.ENCRYPT, "important-to-party-by-mail", "approved party example-law-firm",
    ),
    "first-minute-after-in-shanghai": Case(
        ID_TEXT, mail(OFFICE, LAW_FIRM, when=datetime(2027, 12, 31, 16, 0, tzinfo=UTC)),
        Action.BLOCK, "important-elsewhere", "expired on 2027-12-31",
    ),
    "court-still-in-force-2028": Case(
        ID_TEXT, mail(OFFICE, COURT, when=EXPIRED), Action.ENCRYPT,
        "important-to-party-by-mail", "approved party example-court",
    ),
}  # fmt: skip


def _verdict(default, case: Case):
    return evaluate(default, scan(default, case.content), case.ctx)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_default_policy_decides(default, case: Case):
    v = _verdict(default, case)
    assert (v.action, v.rule) == (case.action, case.rule), v.reason
    assert case.reason in v.reason
    for name, expected in case.extra.items():
        assert getattr(v, name) == expected, name
    assert v.reported == () and not v.would_block  # the default policy has no report rules


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_no_raw_value_in_any_verdict(default, case: Case):
    text = str(_verdict(default, case))
    json.loads(text)
    for raw in (*RAW_VALUES, *(f"1391234{i:04d}" for i in range(25))):
        assert raw not in text
    if case.ctx.recipient:
        assert case.ctx.recipient.lower() not in text.lower()


def test_table_texts_find_what_they_say(default):
    """The decision table rests on these detections; check them once, exactly."""
    detected = {
        ID_TEXT: ["cn_resident_id"],
        PHONE_TEXT: ["cn_mobile"],
        CARD_TEXT: ["cn_bank_card"],
        CORE_TEXT: ["core_marking"],
        BUSINESS_TEXT: ["business_documents"],
        phones(25): ["cn_mobile"] * 25,
        ARCHIVE: ["encrypted_archive"],
        "": [],
    }
    for content, detectors in detected.items():
        assert [f.detector for f in scan(default, content)] == detectors, content


def test_phones_to_law_firm_are_masked_for_need_to_know(default):
    findings = scan(default, PHONE_TEXT)
    v = evaluate(default, findings, mail(OFFICE, LAW_FIRM))
    assert v.action is Action.MASK
    [masked] = v.mask
    assert (masked.detector, masked.masked, masked.data_class, masked.level) == (
        "cn_mobile",
        "138****5678",
        "contact",
        "basic",
    )
    assert masked.value_hash == findings[0].value_hash


def test_id_and_phone_to_law_firm_encrypts_and_masks_the_phone(default):
    v = evaluate(default, scan(default, (ID_TEXT, PHONE_TEXT)), mail(OFFICE, LAW_FIRM))
    assert v.action is Action.ENCRYPT
    assert [f.detector for f in v.mask] == ["cn_mobile"]
    assert [f.detector for f in v.findings] == ["cn_resident_id"]


def test_reason_summarizes_distinct_values(default):
    content = (ID_TEXT, ID_TEXT, PHONE_TEXT, CARD_TEXT)
    v = evaluate(default, scan(default, content), web(OFFICE, "www.example.com"))
    assert v.rule == "important-elsewhere"
    assert v.reason == (
        "Important data leaves only to an approved party over an encrypted channel: "
        "2 distinct values: cn_bank_card ×1 (financial, important), "
        "cn_resident_id ×1 (identity, important) to www.example.com; zone external"
    )
    assert {f.detector for f in v.findings} == {"cn_resident_id", "cn_bank_card"}


def test_place_is_reported(default):
    v = evaluate(default, [], web("::1", "wx.mail.qq.com", dest="::1"))
    assert (v.place.source_zone, v.place.destination_zone) == ("office", "office")
    assert v.place.categories == frozenset({"personal-webmail"})
    d = v.to_dict()
    assert (d["source_zone"], d["destination_zone"], d["categories"]) == (
        "office",
        "office",
        ["personal-webmail"],
    )


def test_default_policy_loads_without_warnings(default):
    assert default.warnings == ()
    assert [r.id for r in default.rules] == [
        "uninspectable-to-external",
        "core-never-leaves",
        "identifying-to-personal-channels",
        "important-to-party-by-mail",
        "cross-border-to-party-recorded",
        "important-to-party-over-https",
        "important-elsewhere",
        "bulk-contacts-to-external",
        "basic-to-external-recorded",
    ]
    assert {s.id for s in default.custom_detectors} == {"core_marking", "business_documents"}


def test_party_gets_nothing_it_may_not_receive(tmp_path):
    """A party receives only its classes, whatever a rule says: the court without `contact`."""
    import shutil

    from rules.policy import load_policy

    shutil.copytree(DEFAULT_DIR, tmp_path / "p")
    parties = tmp_path / "p" / "parties.yaml"
    text = parties.read_text(encoding="utf-8")
    court = "receives: [identity, financial, contact, business-secret, organisation]\n    encrypt"
    assert court in text
    parties.write_text(text.replace(court, court.replace("contact, ", "")), encoding="utf-8")
    policy = load_policy(tmp_path / "p")
    v = evaluate(policy, scan(policy, (ID_TEXT, PHONE_TEXT)), mail(OFFICE, COURT))
    assert "may not receive contact" in v.reason
    assert v.rule == "important-elsewhere"
    assert v.action is Action.BLOCK
    # phone numbers alone: no rule stops them, the party check does
    v = evaluate(policy, scan(policy, (PHONE_TEXT,)), mail(OFFICE, COURT))
    assert (v.action, v.rule) == (Action.BLOCK, "party:example-court")
    assert v.reason.startswith("party example-court may not receive contact")
