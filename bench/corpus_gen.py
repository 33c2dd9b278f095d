"""Deterministic synthetic traffic for the scan benchmark: documents and office files.

`corpus(mb, seed, cache_dir, profile)` returns documents (64 KiB – 1 MiB of UTF-8
each) of mixed Chinese/English prose, JSON, CSV, HTML and MIME mail with
sensitive values planted in them, in one of two profiles (`PROFILES`):

- "dense" — debt-collection files: ~350 planted values per MB, and an order
  number and a timestamp on every JSON record and CSV row, log lines in the
  prose (~10,700 runs of 8+ digits per MB);
- "office" — ordinary office and web traffic: the same document kinds and the
  same mix of plain, separated and disguised values, but ~10–20 values per MB,
  and order numbers, timestamps and log lines a few per KB rather than on every
  line (dates, amounts, some order numbers and masked values stay, as hard
  negatives).

Every value is generated (never a real person's): resident IDs with a
valid GB 11643 check character, Luhn-valid 62-prefix UnionPay cards, mobiles in
allocated ranges, e-mail addresses, USCC codes with both check characters and
passport numbers beside the word 护照. Most values are written plainly; some with
separators (6222 0212 …, 138-0013-8000); some disguised the way the engine is
meant to undo (full-width digits, zero-width characters, HTML entities, URL
escapes, JSON \\u escapes, base64, quoted-printable, Chinese numerals). The
documents also carry the same encodings as ordinary noise (`&nbsp;`, URL-encoded
Chinese in links, ensure_ascii JSON, base64 images, encoded mail subjects) and
hard negatives (masked values, order numbers, timestamps, dates, amounts).

The same seed and profile give the same bytes: each document has its own
`random.Random` derived from the seed and its index, so a 5 MB corpus is the
first documents of the 50 MB one; the two profiles draw the same document kinds
and target sizes for the same seed. "dense" is the output of generator version 2
unchanged, so its cache files keep their names.

`xlsx_bytes`, `docx_bytes` and `pdf_bytes` build office files the same way for
the extraction part of the benchmark (same content for the same seed; zip member
times and the .xlsx modification date are the clock's).
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import quopri
import random
import string
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rules import checks

GENERATOR_VERSION = 2  # bump when the output changes, so cached corpora are rebuilt
FIXED_TIME = dt.datetime(2024, 3, 15, 9, 30, tzinfo=dt.UTC)  # office files' metadata
MIN_DOC = 64 * 1024
MAX_DOC = 1024 * 1024

# -- vocabulary ---------------------------------------------------------------

SURNAMES = [("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"),
            ("杨", "yang"), ("赵", "zhao"), ("黄", "huang"), ("周", "zhou"), ("吴", "wu"),
            ("徐", "xu"), ("孙", "sun"), ("胡", "hu"), ("朱", "zhu"), ("高", "gao"),
            ("林", "lin"), ("何", "he"), ("郭", "guo"), ("马", "ma"), ("罗", "luo")]  # fmt: skip
GIVEN = [("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("秀英", "xiuying"), ("敏", "min"),
         ("静", "jing"), ("丽", "li"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"),
         ("洋", "yang"), ("勇", "yong"), ("艳", "yan"), ("杰", "jie"), ("娟", "juan"),
         ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("霞", "xia"),
         ("雨萱", "yuxuan")]  # fmt: skip
CITIES = ["北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "南京", "西安", "重庆",
          "苏州", "天津", "长沙", "郑州", "青岛"]  # fmt: skip
CITIES_EN = ["Beijing", "Shanghai", "Guangzhou", "Shenzhen", "Hangzhou", "Chengdu", "Wuhan"]
COMPANIES = ["北京京和信达咨询服务有限公司", "深圳市前海青禾资产管理有限公司",
             "上海浦川融资租赁有限公司", "杭州云帆信用管理有限公司",
             "成都锦程数据服务有限公司"]  # fmt: skip
BANKS = ["中国工商银行", "中国建设银行", "中国农业银行", "中国银行", "招商银行", "交通银行"]
PRODUCTS = ["无线耳机", "保温杯", "机械键盘", "办公椅", "打印纸", "显示器支架", "移动电源"]
EMAIL_DOMAINS = ["qq.com", "163.com", "126.com", "sina.com", "gmail.com", "outlook.com",
                 "jhxd-consult.com", "yunfan-credit.cn"]  # fmt: skip
# Area codes (province + prefecture + county) that exist.
AREAS = ["110101", "110105", "310104", "310115", "440103", "440305", "330106", "510107",
         "420106", "320102", "610113", "500103", "370202", "430104", "410105",
         "620102"]  # fmt: skip
MOBILE_PREFIXES = ["130", "131", "135", "136", "138", "139", "150", "151", "158", "159",
                   "177", "186", "187", "188", "189", "199"]  # fmt: skip
CARD_BINS = ["622202", "621700", "622848", "621226", "622588", "625965", "621483"]

ZH_SENTENCES = [
    "{name}于{date}向{company}申请个人消费贷款{amount}元，期限{n}个月，月利率{rate}%。",
    "根据合同第{n}条约定，借款人应于每月{day}日前足额还款，逾期将按日收取万分之{n}的罚息。",
    "本次会议讨论了{city}分公司第{q}季度的催收进度，回款率为{pct}%，环比上升{small}个百分点。",
    "客服{name}已于{datetime}电话联系客户，客户表示将在{date}前处理剩余欠款。",
    "系统日志：订单{order}状态变更为已完成，处理耗时{ms}毫秒。",
    "请各部门于{date}前提交{year}年度预算报告，逾期未交的部门将在周会上通报。",
    "风险提示：近期出现冒充客服的诈骗电话，请勿向陌生人透露验证码或银行卡密码。",
    "{company}位于{city}市高新区科技路{n}号，主营业务包括信息技术咨询与数据服务。",
    "经核实，客户{name}的手机号码为{masked_mobile}，身份证号为{masked_id}，资料已归档。",
    "您的快递（运单号SF{long}）已由{city}转运中心发出，预计{date}送达。",
    "本月共处理投诉{n}件，其中已结案{small}件，平均处理时长{rate}天。",
    "附件为{year}年{month}月对账单，合计应收{amount}元，已收{amount2}元。",
    "服务器 192.168.{small}.{n} 在 {datetime} 出现短暂超时，运维已于五分钟内恢复。",
    "借款人{name}表示目前经济困难，申请将还款日延后至{date}，需主管审批。",
    "第二〇二四年度第三次董事会决议：同意{company}以自有资金{amount}元投资设立子公司。",
    "温馨提示：本邮件及附件仅供收件人使用，如误收请立即删除并通知发件人。",
]  # fmt: skip
EN_SENTENCES = [
    "The quarterly review for the {city_en} branch shows a recovery rate of {pct}%.",
    "Please find attached the updated repayment schedule for reference {ref}.",
    "Request {uuid} completed in {ms} ms with status 200.",
    "{name_en} confirmed that the payment of CNY {amount} was received on {date}.",
    "Note: this message may contain confidential information intended only for the addressee.",
    "{iso} INFO [worker-{small}] processed batch {n} ({ms} records) in {rate}s",
    "Build 1.0.{small}.{compact} deployed to staging; rollback plan attached.",
    "Invoice {ref} is overdue by {n} days; a reminder was sent on {date}.",
    "Order {order} shipped from the {city_en} warehouse, tracking SF{long}.",
    "Let's sync tomorrow at 10:30 to go through the open items on the collection dashboard.",
]  # fmt: skip

ZH_PII = {
    "id": ["借款人{name}，身份证号{v}，现住{city}市。", "证件号码：{v}（{name}）",
           "担保人{name}的公民身份号码{v}已核验。", "{name}{v}"],
    "card": ["请将款项转入{bank} 卡号 {v}（户名：{name}）。", "还款账户：{v}，开户行{bank}。",
             "{name}名下借记卡{v}本月自动扣款失败。"],
    "mobile": ["联系电话 {v}，联系人{name}。", "客户手机：{v}", "如有疑问请致电{name}，电话{v}。"],
    "email": ["如有疑问请发邮件至{v}。", "{name}的邮箱是{v}，请抄送。"],
    "uscc": ["债权人：{company}（统一社会信用代码：{v}）", "供应商税号 {v} 已登记。"],
    "passport": ["{name}的护照号码 {v}，有效期至{date}。", "护照：{v}"],
}  # fmt: skip
EN_PII = {
    "id": ["ID no. {v} ({name_en})"],
    "card": ["Card number {v}, holder {name_en}."],
    "mobile": ["Contact {name_en}, mobile {v}."],
    "email": ["Reply to {v} before Friday."],
    "uscc": ["Creditor USCC {v}."],
    "passport": ["Passport {v}, {name_en}."],
}
# How often each kind of value is planted (relative weights).
KIND_WEIGHTS = {"id": 25, "card": 20, "mobile": 30, "email": 15, "uscc": 6, "passport": 4}

# Ordinary office sentences for the "office" profile: meetings, notices, replies and
# product text, with dates, amounts and short numbers but no log lines and no long
# reference numbers.
OFFICE_ZH_SENTENCES = [
    "各位同事：{city}办公室将于{date}进行网络设备升级，届时内网访问可能中断约{n}分钟。",
    "本周例会改到周四下午三点，请各小组准备好项目进度和下周计划。",
    "新版报销流程已上线，单笔{amount}元以下的费用由部门负责人直接审批。",
    "感谢您的来信，您反馈的问题我们已转交相关部门处理，预计{small}个工作日内回复。",
    "{name}将于下周一起休年假，期间工作由{name2}代为处理。",
    "第{q}季度{city}区域销售额同比增长{pct}%，其中线上渠道占比约{small}成。",
    "会议纪要：一、确认{year}年度培训计划；二、讨论新员工入职流程；三、其他事项。",
    "本产品采用环保材料制作，支持七天无理由退货，详情请咨询在线客服。",
    "请于{date}前完成信息安全培训并提交测试结果，未完成者将无法登录办公系统。",
    "欢迎参加{company}{year}年度客户交流会，会议地点为{city}国际会展中心{small}号馆。",
    "经研究决定，原定于本周五的部门团建活动延期举行，具体时间另行通知。",
    "附件是修改后的合同草案，第{n}条和第{small}条有改动，请法务部门再审阅一遍。",
    "{city}天气预报：明天多云转晴，早晚温差较大，请注意添衣。",
    "您好，您订购的{product}已出库，如有问题请随时联系我们。",
    "根据公司规定，差旅住宿标准为一线城市每晚不超过{small}百元。",
    "本次问卷共回收{n}份，满意度为{pct}%，主要意见集中在响应速度方面。",
    "项目评审会定于{date}召开，请各位评委提前阅读材料。",
    "办公区{small}楼茶水间的咖啡机已维修完毕，可以正常使用。",
]  # fmt: skip
OFFICE_EN_SENTENCES = [
    "Hi all, the office in {city_en} will be closed on {date} for maintenance.",
    "Thanks for your feedback; we have passed it on to the product team.",
    "Please review the attached draft and send your comments by Friday.",
    "The Q{q} report shows revenue up {pct}% year on year, driven by online sales.",
    "Reminder: the all-hands meeting starts at 3 pm in the main conference room.",
    "{name_en} will be out of office next week; please contact the team alias instead.",
    "Our new return policy allows refunds within {n} days of delivery.",
    "The training session on information security is mandatory for all staff.",
    "Agenda: budget review, hiring plan, and any other business.",
    "Shipping is free for orders over CNY {amount}; see the FAQ for details.",
]  # fmt: skip


@dataclass(frozen=True)
class Profile:
    """How densely values and long numbers are written into the documents."""

    name: str
    pii: float  # multiplier on every chance of planting a value
    numbers: float  # chance a JSON record / CSV row carries an order number and a timestamp
    masked: float  # chance a JSON record / CSV row carries a masked mobile (hard negative)
    refs: float  # chance a CSV note is an invoice reference rather than a sentence
    ordinary: float  # share of sentences from the ordinary office pools
    price: str  # field for a CSV row's unit price ("amount2" reaches 499,999.99)


PROFILES = {
    "dense": Profile("dense", pii=1.0, numbers=1.0, masked=1.0, refs=0.7, ordinary=0.0,
                     price="amount2"),
    "office": Profile("office", pii=0.04, numbers=0.1, masked=0.3, refs=0.1, ordinary=0.75,
                      price="price"),
}  # fmt: skip

CN_DIGITS = ("〇一二三四五六七八九", "零壹贰叁肆伍陆柒捌玖")
FULL_WIDTH = str.maketrans(string.digits + "@.", "０１２３４５６７８９＠．")
ZERO_WIDTH = "\u200b\u200c\u200d\ufeff\u2060"


# -- values -------------------------------------------------------------------


def resident_id(rng: random.Random) -> str:
    born = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(365 * 55))
    body = f"{rng.choice(AREAS)}{born:%Y%m%d}{rng.randrange(1000):03d}"
    return body + checks.gb11643_check_char(body)


def bank_card(rng: random.Random) -> str:
    length = rng.choice((16, 19, 19))
    body = rng.choice(CARD_BINS) + "".join(rng.choices(string.digits, k=length - 7))
    for last in string.digits:
        if checks.luhn_ok(body + last):
            return body + last
    raise AssertionError("unreachable: one check digit always fits")


def mobile(rng: random.Random) -> str:
    while True:
        value = rng.choice(MOBILE_PREFIXES) + "".join(rng.choices(string.digits, k=8))
        if checks.mobile_ok(value):
            return value


def email(rng: random.Random) -> str:
    _, surname = rng.choice(SURNAMES)
    _, given = rng.choice(GIVEN)
    local = rng.choice((f"{surname}.{given}", f"{given}{surname}", f"{surname}{given}"))
    return f"{local}{rng.randrange(100) if rng.random() < 0.6 else ''}@{rng.choice(EMAIL_DOMAINS)}"


def uscc(rng: random.Random) -> str:
    alphabet = checks.USCC_ALPHABET
    org = "".join(rng.choices(string.digits + "ABCDEFGHJKLMNPQRTUWXY", k=8))
    body = "91" + rng.choice(AREAS) + org + checks.org_code_check_char(org)
    if body[-1] not in alphabet:
        return uscc(rng)
    return body + checks.uscc_check_char(body)


def passport(rng: random.Random) -> str:
    return rng.choice("EG") + "".join(rng.choices(string.digits, k=8))


VALUES: dict[str, Callable[[random.Random], str]] = {
    "id": resident_id,
    "card": bank_card,
    "mobile": mobile,
    "email": email,
    "uscc": uscc,
    "passport": passport,
}


def _day(rng: random.Random) -> dt.date:
    return dt.date(2023, 1, 1) + dt.timedelta(days=rng.randrange(900))


def _moment(rng: random.Random) -> dt.datetime:
    return dt.datetime.combine(_day(rng), dt.time(rng.randrange(24), rng.randrange(60)))


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES)[0] + rng.choice(GIVEN)[0]


def _name_en(rng: random.Random) -> str:
    return f"{rng.choice(GIVEN)[1].title()} {rng.choice(SURNAMES)[1].title()}"


def _date(rng: random.Random) -> str:
    day = _day(rng)
    return f"{day:%Y-%m-%d}" if rng.random() < 0.5 else f"{day.year}年{day.month}月{day.day}日"


def _masked_mobile(rng: random.Random) -> str:
    return f"1{rng.randint(3, 9)}{rng.randrange(10)}****{rng.randrange(10000):04d}"


def _amount(rng: random.Random) -> str:
    return f"{rng.randrange(100, 500_000):,}.{rng.randrange(100):02d}"


# Ordinary fields of the templates: names, dates, amounts and the hard negatives
# (masked values, order numbers, IPs, timestamps, long reference numbers).
FIELD_MAKERS: dict[str, Callable[[random.Random], str]] = {
    "name": _name,
    "name2": _name,
    "name_en": _name_en,
    "city": lambda rng: rng.choice(CITIES),
    "city_en": lambda rng: rng.choice(CITIES_EN),
    "company": lambda rng: rng.choice(COMPANIES),
    "bank": lambda rng: rng.choice(BANKS),
    "product": lambda rng: rng.choice(PRODUCTS),
    "date": _date,
    "datetime": lambda rng: f"{_moment(rng):%Y-%m-%d %H:%M}",
    "iso": lambda rng: f"{_moment(rng):%Y-%m-%dT%H:%M:%S}.{rng.randrange(1000):03d}Z",
    "compact": lambda rng: f"{_day(rng):%Y%m%d}",
    "year": lambda rng: str(rng.randint(2019, 2025)),
    "month": lambda rng: str(rng.randint(1, 12)),
    "day": lambda rng: str(rng.randint(1, 28)),
    "amount": _amount,
    "amount2": _amount,
    "price": lambda rng: f"{rng.randrange(990, 300_000) / 100:.2f}",
    "n": lambda rng: str(rng.randint(2, 99)),
    "small": lambda rng: str(rng.randint(1, 9)),
    "q": lambda rng: str(rng.randint(1, 4)),
    "pct": lambda rng: f"{rng.uniform(10, 99):.1f}",
    "rate": lambda rng: f"{rng.uniform(0.1, 9):.2f}",
    "ms": lambda rng: str(rng.randint(3, 9000)),
    "order": lambda rng: f"{_day(rng):%Y%m%d}{rng.randrange(10**12):012d}",
    "long": lambda rng: "".join(rng.choices(string.digits, k=12)),
    "ref": lambda rng: f"INV-{rng.randint(2019, 2025)}-{rng.randrange(100000):05d}",
    "uuid": lambda rng: "".join(rng.choices("0123456789abcdef", k=32)),
    "masked_mobile": _masked_mobile,
    "masked_id": lambda rng: f"{rng.choice(AREAS)}********{rng.randrange(10000):04d}",
}


class Fields(dict):
    """Template fields made on first use, so a template costs only what it names."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.rng = rng

    def __missing__(self, key: str) -> str:
        value = self[key] = FIELD_MAKERS[key](self.rng)
        return value


# -- presentations (how a value is written) -----------------------------------


def separated(kind: str, v: str, rng: random.Random) -> str:
    sep = rng.choice((" ", "-", " "))
    if kind == "card":
        return sep.join(v[i : i + 4] for i in range(0, len(v), 4))
    if kind == "mobile":
        return f"{v[:3]}{sep}{v[3:7]}{sep}{v[7:]}"
    return f"{v[:6]}{sep}{v[6:14]}{sep}{v[14:]}"  # resident id


def zero_width(v: str, rng: random.Random) -> str:
    chars = list(v)
    for _ in range(rng.randint(1, 3)):
        chars.insert(rng.randrange(1, len(chars)), rng.choice(ZERO_WIDTH))
    return "".join(chars)


def chinese_numerals(v: str, rng: random.Random) -> str:
    table = rng.choice(CN_DIGITS)
    return "".join(table[int(c)] if c.isdigit() else c for c in v)


def html_entities(v: str, rng: random.Random) -> str:
    form = rng.choice(("&#{};", "&#x{:x};"))
    return "".join(form.format(ord(c)) for c in v)


def url_escaped(v: str, rng: random.Random) -> str:
    if "@" in v and rng.random() < 0.5:
        return v.replace("@", "%40")
    return "".join(f"%{b:02X}" for b in v.encode())


def json_escaped(v: str, rng: random.Random) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in v)


DISGUISES: dict[str, Callable[[str, random.Random], str]] = {
    "full-width": lambda v, rng: v.translate(FULL_WIDTH),
    "zero-width": zero_width,
    "chinese-numerals": chinese_numerals,
    "html-entities": html_entities,
    "url-escaped": url_escaped,
    "json-escaped": json_escaped,
}
# Which disguises make sense for which kind of value.
NOT_FOR_EMAIL = {"chinese-numerals"}


@dataclass
class Planted:
    """What was written into one document, for the sanity check of finding counts."""

    forms: Counter = field(default_factory=Counter)  # plain / separated / disguise name


class Writer:
    """Fills in templates for one document with its own random stream."""

    def __init__(
        self,
        rng: random.Random,
        planted: Planted,
        disguises: tuple[str, ...],
        profile: Profile = PROFILES["dense"],
    ) -> None:
        self.rng = rng
        self.planted = planted
        self.disguises = disguises
        self.profile = profile

    def fields(self) -> Fields:
        return Fields(self.rng)

    def chance(self, p: float) -> bool:
        """True with probability p; draws nothing when p is 0 or 1 (the "dense" bytes)."""
        return p >= 1.0 or (p > 0.0 and self.rng.random() < p)

    def sentence(self, english: float = 0.25) -> str:
        if self.chance(self.profile.ordinary):
            en, zh = OFFICE_EN_SENTENCES, OFFICE_ZH_SENTENCES
        else:
            en, zh = EN_SENTENCES, ZH_SENTENCES
        pool = en if self.rng.random() < english else zh
        return self.rng.choice(pool).format_map(self.fields())

    def value(self, kind: str | None = None, disguise_rate: float = 0.1) -> tuple[str, str]:
        """(kind, the value as written) — plain, separated or disguised."""
        rng = self.rng
        kind = kind or rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()))[0]
        v = VALUES[kind](rng)
        roll = rng.random()
        form = "plain"
        if roll < disguise_rate and self.disguises and kind not in ("passport", "uscc"):
            usable = [d for d in self.disguises if not (d in NOT_FOR_EMAIL and kind == "email")]
            if usable:
                form = rng.choice(usable)
                v = DISGUISES[form](v, rng)
        elif roll < disguise_rate + 0.2 and kind in ("card", "mobile", "id"):
            form = "separated"
            v = separated(kind, v, rng)
        self.planted.forms[form] += 1
        return kind, v

    def fields_with(self, v: str) -> Fields:
        fields = self.fields()
        fields["v"] = v
        return fields

    def pii_sentence(self, english: float = 0.2) -> str:
        kind, v = self.value()
        pool = EN_PII if self.rng.random() < english else ZH_PII
        return self.rng.choice(pool[kind]).format_map(self.fields_with(v))

    def paragraph(self, pii_rate: float, english: float = 0.25) -> str:
        parts = []
        for _ in range(self.rng.randint(3, 8)):
            if self.rng.random() < pii_rate * self.profile.pii:
                parts.append(self.pii_sentence())
            else:
                parts.append(self.sentence(english))
        return "".join(parts) if self.rng.random() < 0.7 else " ".join(parts)


# -- document kinds -----------------------------------------------------------
# Each yields chunks of text; the caller stops when the document is big enough.


def prose_chunks(w: Writer):
    while True:
        yield w.paragraph(pii_rate=0.04) + "\n\n"


def json_chunks(w: Writer, ascii_only: bool):
    rng = w.rng
    yield '{"code":0,"message":"ok","data":['
    profile = w.profile
    n = 0
    while True:
        f = w.fields()
        record: dict[str, object] = {"id": n}
        if w.chance(profile.numbers):
            record["order_no"] = f["order"]
        record.update(customer=f["name"], city=f["city"], amount=f["amount"])
        if w.chance(profile.numbers):
            record["created_at"] = f["iso"]
        if w.chance(profile.masked):
            record["contact"] = f["masked_mobile"]
        record["remark"] = w.sentence(english=0.2)
        escaped = None
        if rng.random() < 0.06 * profile.pii:
            kind, value = w.value()
            if value.startswith("\\u"):  # already JSON-escaped by the disguise
                escaped = value
                value = "@@VALUE@@"
            key = {"id": "id_no", "card": "card_no", "email": "email"}.get(kind, "contact")
            record[key] = value
        text = json.dumps(record, ensure_ascii=ascii_only)
        if escaped is not None:
            text = text.replace("@@VALUE@@", escaped)
        yield (",\n" if n else "") + text
        n += 1


def csv_chunks(w: Writer):
    rng = w.rng
    profile = w.profile
    yield "订单号,下单时间,商品,数量,单价,城市,收货人,联系方式,备注\r\n"
    while True:
        f = w.fields()
        contact = f["masked_mobile"] if w.chance(profile.masked) else ""
        if rng.random() < 0.05 * profile.pii:
            contact = w.value(rng.choice(("mobile", "mobile", "email", "id")))[1]
        if rng.random() < profile.refs:
            note = f["ref"]
        else:
            note = w.sentence(english=0.1).replace(",", "，")
        price = f[profile.price].replace(",", "")
        order = f["order"] if w.chance(profile.numbers) else ""
        when = f["datetime"] if w.chance(profile.numbers) else f"{f['month']}月{f['day']}日"
        row = [order, when, rng.choice(PRODUCTS), f["small"], price,
               f["city"], f["name"], contact, note]  # fmt: skip
        yield ",".join(row) + "\r\n"


def html_chunks(w: Writer):
    rng = w.rng
    yield '<!DOCTYPE html><html><head><meta charset="utf-8">'
    yield "<title>客户服务中心</title></head><body>\n"
    while True:
        f = w.fields()
        query = urllib.parse.quote(f"{f['city']}{rng.choice(PRODUCTS)}")
        text = w.paragraph(pii_rate=0.05).replace("，", "，&nbsp;", 1)
        yield (
            f'<div class="item"><p>{text} &ldquo;{f["company"]}&rdquo; &amp; {f["name"]}</p>\n'
            f'<a href="https://search.example.cn/s?q={query}&amp;page={f["small"]}">更多</a></div>\n'
        )
        if rng.random() < 0.1 * w.profile.pii:
            _, v = w.value(rng.choice(("mobile", "email", "card")))
            yield f'<form><input type="text" name="field" value="{v}"></form>\n'
        if rng.random() < 0.05 * w.profile.pii:
            _, v = w.value("email")
            yield f'<a href="mailto:{v}">联系我们</a>\n'


def _b64_lines(data: bytes) -> str:
    text = base64.b64encode(data).decode()
    return "\r\n".join(text[i : i + 76] for i in range(0, len(text), 76)) + "\r\n"


def _relabel(planted: Planted, before: Counter, form: str) -> None:
    """Values planted since `before` are all inside an encoding: count them as `form`."""
    added = planted.forms - before
    planted.forms = planted.forms - added
    planted.forms[form] += added.total()


def mail_chunks(w: Writer):
    rng = w.rng
    boundary = "----=_Part_" + "".join(rng.choices(string.digits, k=12))
    f = w.fields()
    subject = base64.b64encode(f"关于{f['company']}的催收进度汇报".encode()).decode()
    yield (
        f"From: {email(rng)}\r\nTo: {email(rng)}\r\nSubject: =?UTF-8?B?{subject}?=\r\n"
        f'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
    )
    while True:
        roll = rng.random()
        header = f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        if roll < 0.45:
            body = "\r\n".join(w.paragraph(pii_rate=0.04) for _ in range(rng.randint(2, 6)))
            yield f"{header}Content-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
        elif roll < 0.65:  # a text attachment: base64 with values inside
            before = Counter(w.planted.forms)
            rows = "\n".join(
                w.pii_sentence() if w.chance(w.profile.pii) else w.sentence()
                for _ in range(rng.randint(3, 12))
            )
            _relabel(w.planted, before, "base64")
            yield f"{header}Content-Transfer-Encoding: base64\r\n\r\n{_b64_lines(rows.encode())}"
        elif roll < 0.8:  # quoted-printable body
            before = Counter(w.planted.forms)
            body = w.paragraph(pii_rate=0.04)
            _relabel(w.planted, before, "quoted-printable")
            qp = quopri.encodestring(body.encode()).decode().replace("\n", "\r\n")
            yield f"{header}Content-Transfer-Encoding: quoted-printable\r\n\r\n{qp}\r\n"
        else:  # an image: base64 of random bytes
            blob = rng.randbytes(rng.randint(2_000, 40_000))
            yield (
                f"--{boundary}\r\nContent-Type: image/png\r\n"
                f"Content-Transfer-Encoding: base64\r\n\r\n{_b64_lines(blob)}"
            )


# Document kinds with their share of documents and the disguises they carry.
DOC_KINDS: dict[str, tuple[int, tuple[str, ...], Callable]] = {
    "prose": (30, ("full-width", "zero-width", "chinese-numerals"), prose_chunks),
    "json": (15, ("json-escaped", "full-width"), lambda w: json_chunks(w, ascii_only=False)),
    "json-ascii": (8, ("json-escaped",), lambda w: json_chunks(w, ascii_only=True)),
    "csv": (20, ("full-width", "zero-width"), csv_chunks),
    "html": (15, ("html-entities", "url-escaped"), html_chunks),
    "mail": (12, ("full-width", "zero-width"), mail_chunks),
}


@dataclass
class Doc:
    kind: str
    text: str
    planted: Counter  # values written, by form
    size: int = field(init=False)  # bytes of UTF-8

    def __post_init__(self) -> None:
        self.size = len(self.text.encode())


def document(seed: int, index: int, profile: str = "dense") -> Doc:
    rng = random.Random(seed * 1_000_003 + index)
    kind = rng.choices(list(DOC_KINDS), weights=[k[0] for k in DOC_KINDS.values()])[0]
    _, disguises, chunks = DOC_KINDS[kind]
    size = int(MIN_DOC * (MAX_DOC / MIN_DOC) ** rng.random())  # log-uniform
    planted = Planted()
    writer = Writer(rng, planted, disguises, PROFILES[profile])
    parts, total = [], 0
    for chunk in chunks(writer):
        parts.append(chunk)
        total += len(chunk.encode())
        if total >= size:
            break
    if kind.startswith("json"):
        parts.append("]}")
    elif kind == "html":
        parts.append("</body></html>\n")
    return Doc(kind, "".join(parts), planted.forms)


def generate(mb: float, seed: int, profile: str = "dense") -> list[Doc]:
    docs, total, target = [], 0, int(mb * 1e6)
    while total < target:
        doc = document(seed, len(docs), profile)
        docs.append(doc)
        total += doc.size
    return docs


def cache_path(cache_dir: Path, mb: float, seed: int, profile: str) -> Path:
    """One file per profile; "dense" keeps the name it had before profiles existed."""
    tag = "" if profile == "dense" else f"{profile}-"
    return cache_dir / f"corpus-{tag}v{GENERATOR_VERSION}-seed{seed}-{mb:g}MB.json"


def corpus(mb: float, seed: int, cache_dir: Path | None, profile: str = "dense") -> list[Doc]:
    """The corpus, from `cache_dir` if it was generated before with the same settings."""
    if profile not in PROFILES:
        raise ValueError(f"unknown corpus profile {profile!r}; known: {', '.join(PROFILES)}")
    if cache_dir is None:
        return generate(mb, seed, profile)
    path = cache_path(cache_dir, mb, seed, profile)
    if path.exists():
        raw = json.loads(path.read_text("utf-8"))
        return [Doc(d["kind"], d["text"], Counter(d["planted"])) for d in raw]
    docs = generate(mb, seed, profile)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    payload = [{"kind": d.kind, "text": d.text, "planted": d.planted} for d in docs]
    tmp.write_text(json.dumps(payload, ensure_ascii=False), "utf-8")
    tmp.replace(path)
    return docs


# -- office files -------------------------------------------------------------


def debtor_rows(rng: random.Random, n: int) -> list[list]:
    w = Writer(rng, Planted(), ())
    rows = []
    for i in range(n):
        f = w.fields()
        rows.append([i + 1, f["name"], resident_id(rng), mobile(rng), bank_card(rng), f["bank"],
                     float(f["amount"].replace(",", "")), rng.randint(1, 900),
                     f"{f['city']}市科技路{f['n']}号", w.sentence(english=0.0)])  # fmt: skip
    return rows


def xlsx_bytes(rows: int, seed: int) -> bytes:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("债务清单")
    ws.append(["序号", "姓名", "身份证号", "手机号", "银行卡号", "开户行", "欠款金额", "逾期天数",
               "地址", "备注"])  # fmt: skip
    for row in debtor_rows(random.Random(seed), rows):
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def docx_bytes(paragraphs: int, seed: int) -> bytes:
    from docx import Document

    w = Writer(random.Random(seed), Planted(), ("full-width", "zero-width"))
    doc = Document()
    doc.core_properties.created = doc.core_properties.modified = FIXED_TIME
    doc.add_heading("关于逾期账款催收工作的情况报告", level=1)
    for i in range(paragraphs):
        if i % 200 == 199:
            doc.add_heading(f"第{i // 200 + 1}部分", level=2)
        doc.add_paragraph(w.paragraph(pii_rate=0.05))
    table = doc.add_table(rows=1, cols=4)
    titles = ("姓名", "身份证号", "手机号", "欠款金额")
    for cell, title in zip(table.rows[0].cells, titles, strict=True):
        cell.text = title
    for row in debtor_rows(w.rng, paragraphs // 20):
        cells = table.add_row().cells
        for cell, value in zip(cells, (row[1], row[2], row[3], f"{row[6]:.2f}"), strict=True):
            cell.text = value
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def pdf_bytes(pages: int, seed: int) -> bytes:
    """Statement pages in English (no CJK font is installed) with values on them.

    With a TrueType font (DejaVu) the text is written as CID glyphs with a
    ToUnicode map, the same path a CJK font takes; without it, a core font.
    """
    from fpdf import FPDF

    rng = random.Random(seed)
    w = Writer(rng, Planted(), ())
    pdf = FPDF()
    pdf.set_creation_date(FIXED_TIME)
    if FONT.exists():
        pdf.add_font("body", fname=str(FONT))
        pdf.set_font("body", size=9)
    else:
        pdf.set_font("helvetica", size=9)
    for page in range(pages):
        pdf.add_page()
        pdf.cell(0, 6, f"Account statement - page {page + 1}", new_x="LMARGIN", new_y="NEXT")
        for _ in range(55):
            if rng.random() < 0.08:
                kind, v = w.value(rng.choice(("id", "card", "mobile", "email")), 0.0)
                line = rng.choice(EN_PII[kind]).format_map(w.fields_with(v))
            else:
                line = w.sentence(english=1.0)
            line = "".join(c for c in line if c.isascii())[:120]  # DejaVu has no CJK glyphs
            pdf.cell(0, 4.6, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
