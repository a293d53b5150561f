"""Deterministic synthetic landing data for the single customer view pipeline.

Why this exists: the pipeline must be tested on data that looks like what the
channels really deliver (see the landing-formats spec), at a
size that shows whether the set-based design holds, and with a ground truth that
says which records belong to the same person. Real customer data cannot be used
for that, so we synthesise it.

The generator draws a population of people first (true phone, name, unionid,
member cards, ...), then lets every channel "export" its records about them in
that channel's own format and with that channel's own damage (masked phones,
Excel mangling, hand-typed spellings, staff placeholders). A ground-truth CSV,
written outside the landing folder, records for every landing record the person
behind it and the identifiers a careful pipeline could really use.

Design constraints and how they are met:

* **Deterministic**: one ``numpy.random.default_rng(seed)`` drives every random
  choice, in a fixed order; all times are relative to a fixed reference day
  (2026-11-21, Asia/Shanghai); sorts are stable. Same ``(people, seed)`` gives
  byte-identical files.
* **Fast and memory-lean**: no Python loop per row. Random draws are numpy
  vectors, text is built with Polars string expressions, files are written with
  ``write_csv``/``write_ndjson``. One million people (about six million landing
  rows) take well under two minutes on two cores.
* **Plain Python**: no Dagster import, so tests and scripts can call it directly.

Run ``scv generate --people 100000 --out DIR/landing`` to
produce a landing folder (and ``DIR/landing-truth.csv``).
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

# ---------------------------------------------------------------------------
# Fixed reference time. Shanghai has had no daylight saving since 1991, so a
# constant +08:00 shift is exact and avoids any dependency on a tz database.
# ---------------------------------------------------------------------------
REF_DAY_START = 1_795_190_400  # 2026-11-21 00:00:00 +08:00 as Unix seconds
REF_END = REF_DAY_START + 86_400  # every record happens before the end of that day
DAY = 86_400
HISTORY = 3 * 365 * DAY  # activity spreads over the previous ~3 years
T0 = REF_END - HISTORY
TZ_SHIFT = 8 * 3600
NICKNAME_CUTOFF = 1_640_534_400  # 2021-12-27: WeChat stopped returning nicknames
WEIBO_LAUNCH = 1_250_208_000  # 2009-08-14

RECORD_TYPES = (
    "followers",
    "miniprogram",
    "users",
    "interactions",
    "leads",
    "tmall_orders",
    "webshop_orders",
    "members",
    "transactions",
    "tickets",
    "surveys",
)

# record type -> (channel folder, file stem, extension)
FILES = {
    "followers": ("wechat", "followers", "jsonl"),
    "miniprogram": ("wechat", "miniprogram", "jsonl"),
    "users": ("weibo", "users", "jsonl"),
    "interactions": ("weibo", "interactions", "jsonl"),
    "leads": ("weibo", "leads", "csv"),
    "tmall_orders": ("ecommerce", "tmall-orders", "csv"),
    "webshop_orders": ("ecommerce", "webshop-orders", "csv"),
    "members": ("store", "members", "csv"),
    "transactions": ("store", "transactions", "csv"),
    "tickets": ("service", "tickets", "csv"),
    "surveys": ("service", "surveys", "csv"),
}

# Header lists exactly as landing-formats.md names them (the canonical order).
# fmt: off
HEADERS = {
    "followers": [
        "openid", "unionid", "nickname", "sex", "language", "city", "province",
        "country", "subscribe", "subscribe_time", "remark", "tagid_list",
    ],
    "miniprogram": [
        "openid", "unionid", "phoneNumber", "purePhoneNumber", "countryCode",
        "authorized_at", "marketing_opt_in",
    ],
    "users": [
        "idstr", "screen_name", "gender", "location", "created_at", "followers_count", "verified",
    ],
    "interactions": ["id", "created_at", "user_idstr", "type", "text"],
    "leads": ["线索编号", "微博UID", "姓名", "手机号", "提交时间", "活动名称", "同意营销"],
    "tmall_orders": [
        "订单编号", "买家会员名", "买家应付货款", "实付金额", "订单状态", "收货人姓名",
        "收货地址", "联系手机", "订单创建时间", "订单付款时间",
    ],
    "webshop_orders": [
        "order_id", "customer_email", "customer_phone", "customer_name", "amount_cny",
        "currency", "status", "created_at", "marketing_opt_in",
    ],
    "members": ["会员卡号", "姓名", "手机号", "性别", "生日", "注册门店", "注册时间", "邮箱", "同意营销"],
    "transactions": ["小票号", "门店编码", "会员卡号", "手机号", "交易时间", "金额", "支付方式"],
    "tickets": [
        "ticket_id", "phone", "contact_channel", "category", "topic", "severity",
        "created_at", "resolved_at", "status",
    ],
    "surveys": [
        "survey_id", "phone", "ticket_id", "expected_score", "perceived_score", "price",
        "timeliness", "quality", "attitude", "nps", "submitted_at",
    ],
}

# Adversarial layout traps: one file type with its columns in another order,
# one with an extra column the spec does not list.
WEBSHOP_SHUFFLED = [
    "order_id", "created_at", "status", "amount_cny", "currency", "customer_name",
    "customer_email", "customer_phone", "marketing_opt_in",
]
MEMBERS_EXTRA_COLUMN = "会员等级"

# ---------------------------------------------------------------------------
# Reference lists. Small on purpose: realism comes from combining them.
# ---------------------------------------------------------------------------
# Every prefix here is a valid mainland mobile range per `phonenumbers`
# (1[38]\d, 15[0-35-9], 17[0-35-8], 19[0-35-9] followed by 8 digits).
MOBILE_PREFIXES = np.array(
    [130, 131, 132, 133, 135, 136, 137, 138, 139, 150, 151, 152, 153, 155, 156, 157,
     158, 159, 177, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 199],
    dtype=np.int64,
)
# Hong Kong mobile ranges valid per `phonenumbers` (6[13-59]\d{6}, 9[467]\d{6}).
HK_PREFIXES = np.array([61, 63, 64, 65, 69, 94, 96, 97], dtype=np.int64)
PLACEHOLDERS = ("13800138000", "11111111111", "12345678901", "00000000000")

SURNAMES = [
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"),
    ("杨", "yang"), ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"),
    ("徐", "xu"), ("孙", "sun"), ("马", "ma"), ("朱", "zhu"), ("胡", "hu"),
    ("郭", "guo"), ("何", "he"), ("高", "gao"), ("林", "lin"), ("罗", "luo"),
    ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song"), ("唐", "tang"),
    ("许", "xu"), ("韩", "han"), ("冯", "feng"), ("邓", "deng"), ("曹", "cao"),
    ("彭", "peng"), ("曾", "zeng"), ("肖", "xiao"), ("田", "tian"), ("董", "dong"),
    ("袁", "yuan"), ("潘", "pan"), ("于", "yu"), ("蒋", "jiang"), ("蔡", "cai"),
    ("余", "yu"), ("杜", "du"), ("叶", "ye"), ("程", "cheng"), ("苏", "su"),
    ("魏", "wei"), ("吕", "lv"), ("丁", "ding"), ("任", "ren"), ("沈", "shen"),
    ("姚", "yao"), ("卢", "lu"), ("姜", "jiang"), ("崔", "cui"), ("钟", "zhong"),
    ("谭", "tan"), ("陆", "lu"), ("汪", "wang"), ("范", "fan"), ("金", "jin"),
    ("石", "shi"), ("廖", "liao"), ("贾", "jia"), ("夏", "xia"), ("韦", "wei"),
    ("付", "fu"), ("方", "fang"), ("白", "bai"), ("邹", "zou"), ("孟", "meng"),
    ("熊", "xiong"), ("秦", "qin"), ("邱", "qiu"), ("江", "jiang"), ("尹", "yin"),
    ("薛", "xue"), ("段", "duan"), ("雷", "lei"), ("侯", "hou"), ("龙", "long"),
    ("史", "shi"), ("陶", "tao"), ("黎", "li"), ("贺", "he"), ("顾", "gu"),
    ("毛", "mao"), ("郝", "hao"), ("龚", "gong"), ("邵", "shao"), ("万", "wan"),
    ("钱", "qian"), ("严", "yan"), ("武", "wu"), ("戴", "dai"), ("莫", "mo"),
    ("孔", "kong"), ("欧阳", "ouyang"), ("司马", "sima"), ("上官", "shangguan"),
]
GIVEN_MALE = list("伟强磊军洋勇杰涛明超鹏华飞鑫波斌宇浩凯健俊帆帅旭宁龙林欢阳建国志文东晨辉")
GIVEN_FEMALE = list("芳娜敏静丽艳娟霞秀玲燕婷雪琳颖倩慧佳欣怡萍红兰梅月璐瑶晶丹妍媛楠蕾薇莉")
# Simplified -> Traditional, as some store tills (Hong Kong/Taiwan-style input) hold names.
TRADITIONAL = {
    "陈": "陳", "张": "張", "刘": "劉", "黄": "黃", "赵": "趙", "杨": "楊", "吴": "吳",
    "郑": "鄭", "孙": "孫", "马": "馬", "许": "許", "韩": "韓", "冯": "馮", "邓": "鄧",
    "叶": "葉", "苏": "蘇", "吕": "呂", "卢": "盧", "钟": "鍾", "谭": "譚", "陆": "陸",
    "贾": "賈", "龙": "龍", "顾": "顧", "龚": "龔", "钱": "錢", "严": "嚴", "罗": "羅",
    "谢": "謝", "邹": "鄒", "韦": "韋", "贺": "賀", "万": "萬", "蒋": "蔣", "伟": "偉",
    "军": "軍", "华": "華", "飞": "飛", "鹏": "鵬", "涛": "濤", "凯": "凱", "帅": "帥",
    "宁": "寧", "欢": "歡", "阳": "陽", "国": "國", "东": "東", "辉": "輝", "丽": "麗",
    "艳": "艷", "颖": "穎", "红": "紅", "兰": "蘭", "瑶": "瑤", "静": "靜",
}

# (province full, province short, city full, city short, districts, area code, store code, weight)
REGIONS = [
    ("上海", "上海", "上海市", "上海", ("浦东新区", "徐汇区", "静安区"), "021", "SH", 10),
    ("北京", "北京", "北京市", "北京", ("朝阳区", "海淀区", "东城区"), "010", "BJ", 9),
    ("广东省", "广东", "广州市", "广州", ("天河区", "越秀区", "海珠区"), "020", "GZ", 8),
    ("广东省", "广东", "深圳市", "深圳", ("南山区", "福田区", "宝安区"), "0755", "SZ", 8),
    ("浙江省", "浙江", "杭州市", "杭州", ("西湖区", "上城区", "滨江区"), "0571", "HZ", 7),
    ("江苏省", "江苏", "南京市", "南京", ("鼓楼区", "玄武区", "建邺区"), "025", "NJ", 5),
    ("江苏省", "江苏", "苏州市", "苏州", ("姑苏区", "吴中区", "虎丘区"), "0512", "SU", 5),
    ("四川省", "四川", "成都市", "成都", ("武侯区", "锦江区", "青羊区"), "028", "CD", 6),
    ("湖北省", "湖北", "武汉市", "武汉", ("武昌区", "洪山区", "江汉区"), "027", "WH", 5),
    ("山东省", "山东", "青岛市", "青岛", ("市南区", "崂山区", "黄岛区"), "0532", "QD", 4),
    ("福建省", "福建", "厦门市", "厦门", ("思明区", "湖里区", "集美区"), "0592", "XM", 3),
    ("陕西省", "陕西", "西安市", "西安", ("雁塔区", "碑林区", "未央区"), "029", "XA", 4),
    ("重庆", "重庆", "重庆市", "重庆", ("渝中区", "江北区", "南岸区"), "023", "CQ", 5),
    ("天津", "天津", "天津市", "天津", ("和平区", "南开区", "河西区"), "022", "TJ", 3),
    ("湖南省", "湖南", "长沙市", "长沙", ("岳麓区", "芙蓉区", "天心区"), "0731", "CS", 4),
    ("河南省", "河南", "郑州市", "郑州", ("金水区", "二七区", "中原区"), "0371", "ZZ", 4),
]
STREETS = ["文三路", "中山路", "人民路", "解放路", "建设路", "南京路", "长江路", "学院路",
           "科技路", "和平路", "新华路", "黄河路", "滨江大道", "天府大道", "湖滨路"]
MALLS = ["万象城", "银泰", "大悦城", "来福士", "太古里", "万达广场", "吾悦广场", "龙湖天街",
         "恒隆广场", "印象城"]
NICK_WORDS = ["小猫咪", "阳光男孩", "追风少年", "快乐每一天", "Lily", "Amy", "momo", "糖糖",
              "小鱼儿", "木子", "晴天", "安静的美男子", "一只小可爱", "Jason", "Kevin", "Coco",
              "橙子", "西瓜太郎", "奶茶续命", "旅行者", "吃货一枚", "不想上班", "岁月静好",
              "向日葵", "海绵宝宝", "Sunny", "小王子", "猫系少女", "大白", "星星点灯"]
EMOJI = ["🌸", "🍀", "✨", "😊", "🐱", "🌈", "💕", "🍓", "☀️", "🌙", "🐰", "🎈"]
NICK_CN = ["快乐的小猪", "爱吃鱼的猫", "淘气包", "甜甜圈", "夏天的风", "买买买", "小确幸",
           "云朵", "柠檬树", "星空下"]
COMMENTS = ["好用！已回购", "什么时候有活动？", "求抽中🙏", "质量不错👍", "客服回复太慢了",
            "物流好慢😤", "已下单，期待", "双十一囤货了", "包装很精致🎁", "价格有点贵",
            "第一次买，试试看", "支持国货！", "什么时候补货", "太喜欢了❤️"]
CAMPAIGNS = ["双11抽奖", "新品试用申领", "会员日福利", "520限定礼盒抽奖", "年货节福袋", "粉丝专享小样"]
REMARKS = ["VIP客户", "投诉过", "KOL", "门店导购添加", "老客户", "需回访"]
EMAIL_DOMAINS = ["qq.com", "163.com", "126.com", "gmail.com", "sina.com", "outlook.com",
                 "foxmail.com", "hotmail.com", "icloud.com"]
EMAIL_DOMAIN_P = [0.34, 0.2, 0.08, 0.09, 0.05, 0.07, 0.06, 0.05, 0.06]

# ---------------------------------------------------------------------------
# Phone writing: what a channel may put in a phone field.
# ---------------------------------------------------------------------------
PHONE_CATEGORIES = ("ok", "lossy", "masked", "virtual", "landline", "blank", "placeholder", "typo")
# Categories that are data-entry traps, switched off when adversarial=False.
TRAP_CATEGORIES = {"lossy", "placeholder", "typo"}
# Spellings of a correct mainland number; all of them are still usable keys.
SPELLINGS = ("plain", "intl_spaced", "0086_dashed", "86_space", "dashed", "paren_plus",
             "fullwidth", "apostrophe", "excel", "padded", "e164", "spaced", "plus_dash")
# fmt: on


@dataclass
class People:
    """The true population: one entry per person, arrays indexed by person."""

    n: int
    phone: np.ndarray  # int64 true mainland mobile (shared within families / recycled pairs)
    typo_target: np.ndarray  # int64 phone a typo of this person's phone lands on, 0 = random
    start: np.ndarray  # int64 Unix seconds: first activity
    end: np.ndarray  # int64 Unix seconds: last activity
    gender: np.ndarray  # int8 1 male, 2 female
    region: np.ndarray  # int64 index into REGIONS
    birthday: pl.Series  # Date
    name: pl.Series
    address: pl.Series  # Tmall-style address
    email: pl.Series  # lowercase, null for most
    unionid: pl.Series
    weibo_uid: np.ndarray  # int64
    buyer_nick: pl.Series
    home_store: np.ndarray  # int64 index into the store table
    family_phones: int  # number of phones shared by a family (for stats)


@dataclass
class Stores:
    """The brand's physical stores: codes, names and their own phone numbers."""

    code: pl.Series
    name: pl.Series
    region: np.ndarray
    mobile: np.ndarray  # int64 a store manager's mobile, typed for walk-ins
    landline: pl.Series  # e.g. 021-62881234


@dataclass
class Output:
    """One record type: the landing frame(s) to write and the truth rows."""

    frames: list[pl.DataFrame]  # first is the main file, further ones are re-deliveries
    truth: pl.DataFrame  # record_id, pidx, keys (one row per distinct record)


# ---------------------------------------------------------------------------
# Small vectorised helpers
# ---------------------------------------------------------------------------
_B64 = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", dtype=np.uint8)


def _mix64(x: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64 finaliser: a bijection on uint64, so distinct inputs stay distinct."""
    z = x.astype(np.uint64) + np.uint64((salt * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _token(ids: np.ndarray, salt: int, prefix: str, length: int = 28) -> pl.Series:
    """Opaque id such as a WeChat openid/unionid, unique per id and salt.

    The first 11 characters after the prefix encode all 64 bits of a bijective
    mix of the id, which makes the token unique; the rest only adds realism.
    """
    width = length - len(prefix)
    blocks = -(-width // 11)
    chars = np.empty((len(ids), 11 * blocks), dtype=np.uint8)
    for j in range(blocks):
        mixed = _mix64(ids, salt + j)
        for k in range(11):
            chars[:, 11 * j + k] = _B64[((mixed >> np.uint64(6 * k)) & np.uint64(63)).astype(np.intp)]
    raw = np.ascontiguousarray(chars[:, :width]).view(f"S{width}").ravel()
    return prefix + pl.Series(raw).cast(pl.String)


def _gather(values: list[str] | tuple[str, ...], idx: np.ndarray) -> pl.Series:
    """Pick strings from a small list by index array (vectorised lookup)."""
    return pl.Series(list(values), dtype=pl.String).gather(idx)


def _choice(rng: np.random.Generator, n: int, weights: list[float] | tuple[float, ...]) -> np.ndarray:
    """Index draws with the given (unnormalised) weights."""
    p = np.asarray(weights, dtype=float)
    return rng.choice(len(p), size=n, p=p / p.sum())


def _between(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Uniform Unix seconds in [lo, hi)."""
    return lo + (rng.random(len(lo)) * np.maximum(hi - lo, 1)).astype(np.int64)


def _counts(
    rng: np.random.Generator,
    n: int,
    mean: float,
    heavy_share: float = 0.0,
    heavy_mean: float = 1.0,
    zero_share: float = 0.0,
    cap: int = 300,
) -> np.ndarray:
    """Records per owner: geometric body plus a heavy tail of big spenders, some zeros."""
    body = rng.geometric(1.0 / mean, size=n)
    heavy = rng.geometric(1.0 / heavy_mean, size=n)
    c = np.where(rng.random(n) < heavy_share, heavy, body)
    c[rng.random(n) < zero_share] = 0
    return np.minimum(c, cap).astype(np.int64)


def _local(col: str | pl.Expr, fmt: str) -> pl.Expr:
    """Format Unix seconds as Asia/Shanghai wall-clock text."""
    e = pl.col(col) if isinstance(col, str) else col
    return pl.from_epoch(e + TZ_SHIFT, time_unit="s").dt.strftime(fmt)


def _money(cents: pl.Expr, thousands: pl.Expr) -> pl.Expr:
    """Yuan text with two decimals; `1,299.00` where `thousands` is true (amounts < 1e6)."""
    yuan = cents // 100
    fen = (cents % 100).cast(pl.String).str.zfill(2)
    plain = pl.concat_str([yuan.cast(pl.String), pl.lit("."), fen])
    grouped = pl.concat_str(
        [
            (yuan // 1000).cast(pl.String),
            pl.lit(","),
            (yuan % 1000).cast(pl.String).str.zfill(3),
            pl.lit("."),
            fen,
        ]
    )
    return pl.when(thousands & (yuan >= 1000)).then(grouped).otherwise(plain)


def _amount_cents(rng: np.random.Generator, n: int, median_yuan: float, sigma: float) -> np.ndarray:
    """Lognormal prices, mostly ending in .00/.90, capped below one million yuan."""
    yuan = np.minimum(rng.lognormal(np.log(median_yuan), sigma, n), 99_999.0).astype(np.int64) + 1
    tail = np.array([0, 0, 0, 90, 50, 99])[rng.integers(0, 6, n)]
    return yuan * 100 + tail


def _keys(parts: list[tuple[str, pl.Series]]) -> pl.Series:
    """`kind:value|kind:value` from nullable per-kind Series; null when none is usable."""
    frame = pl.DataFrame({f"k{i}": s for i, (_, s) in enumerate(parts)})
    exprs = [pl.lit(f"{kind}:") + pl.col(f"k{i}") for i, (kind, _) in enumerate(parts)]
    out = frame.select(pl.concat_str(exprs, separator="|", ignore_nulls=True).alias("keys"))
    return out.select(pl.when(pl.col("keys") != "").then(pl.col("keys"))).to_series().alias("keys")


def _with_duplicates(rng: np.random.Generator, df: pl.DataFrame, rate: float) -> pl.DataFrame:
    """Repeat a share of rows verbatim at random places (API paging overlaps, re-sent rows)."""
    n = df.height
    k = int(n * rate)
    if k == 0:
        return df
    picked = np.sort(rng.choice(n, size=k, replace=False))
    where = rng.integers(0, n, size=k)
    order = np.concatenate([np.arange(n) * 2, where * 2 + 1])
    rows = np.concatenate([np.arange(n), picked])
    return df[rows[np.argsort(order, kind="stable")]]


def _rank_by_time(ts: np.ndarray) -> np.ndarray:
    """Stable order of rows by timestamp: exports are sorted by time."""
    return np.argsort(ts, kind="stable")


# ---------------------------------------------------------------------------
# Phones
# ---------------------------------------------------------------------------
def _unique_draw(
    rng: np.random.Generator,
    k: int,
    draw: Callable[[np.random.Generator, int], np.ndarray],
    banned: np.ndarray | None = None,
) -> np.ndarray:
    """k distinct int64 values from `draw(rng, size)`, none in `banned`, in draw order.

    Drawing with a little slack and dropping repeats keeps ids random-looking
    (unlike an arithmetic permutation) and is deterministic for a given rng state.
    """
    out = np.empty(0, dtype=np.int64)
    while len(out) < k:
        need = k - len(out) + 16 + (k - len(out)) // 50
        cand = draw(rng, need)
        if banned is not None:
            cand = cand[~np.isin(cand, banned)]
        merged = np.concatenate([out, cand])
        _, first = np.unique(merged, return_index=True)
        out = merged[np.sort(first)][:k]
    return out


def _unique_ints(rng: np.random.Generator, k: int, low: int, high: int) -> np.ndarray:
    """k distinct random integers in [low, high)."""
    return _unique_draw(rng, k, lambda r, size: r.integers(low, high, size, dtype=np.int64))


def _unique_mobiles(rng: np.random.Generator, k: int, taken: np.ndarray | None = None) -> np.ndarray:
    """k distinct valid mainland mobiles, none a placeholder or in `taken`."""
    banned = np.array([int(p) for p in PLACEHOLDERS], dtype=np.int64)
    if taken is not None:
        banned = np.concatenate([banned, taken])

    def draw(r: np.random.Generator, size: int) -> np.ndarray:
        prefix = MOBILE_PREFIXES[r.integers(0, len(MOBILE_PREFIXES), size)]
        return prefix * 100_000_000 + r.integers(0, 100_000_000, size)

    return _unique_draw(rng, k, draw, banned)


def _spell(s: pl.Expr, sp: pl.Expr) -> pl.Expr:
    """Write an 11-digit mobile in one of the usable SPELLINGS chosen per row."""
    a, b, c = s.str.slice(0, 3), s.str.slice(3, 4), s.str.slice(7, 4)
    forms = [
        s,
        pl.concat_str([pl.lit("+86 "), a, pl.lit(" "), b, pl.lit(" "), c]),
        pl.concat_str([pl.lit("0086-"), a, pl.lit("-"), b, pl.lit("-"), c]),
        pl.lit("86 ") + s,
        pl.concat_str([a, pl.lit("-"), b, pl.lit("-"), c]),
        pl.lit("(+86)") + s,
        s.str.replace_many(list("0123456789"), list("０１２３４５６７８９")),
        pl.lit("'") + s,
        # Excel scientific with full precision keeps all 10 decimals: lossless.
        pl.concat_str([s.str.slice(0, 1), pl.lit("."), s.str.slice(1), pl.lit("E+10")]),
        pl.concat_str([pl.lit(" "), s, pl.lit("  ")]),
        pl.lit("+86") + s,
        pl.concat_str([a, pl.lit(" "), b, pl.lit(" "), c]),
        pl.lit("+86-") + s,
    ]
    expr = pl.when(sp == 0).then(forms[0])
    for k, form in enumerate(forms[1:], start=1):
        expr = expr.when(sp == k).then(form)
    return expr.otherwise(s)


def _phone_column(
    rng: np.random.Generator,
    people: People,
    pidx: np.ndarray,
    mix: dict[str, float],
    spell: dict[str, float],
    adversarial: bool,
) -> tuple[pl.Series, pl.Series]:
    """Phone field as a channel writes it, plus the truth key (E.164) where usable.

    `mix` weights PHONE_CATEGORIES (what kind of value lands in the field),
    `spell` weights SPELLINGS (how a real number is typed). Only category `ok`
    yields a key: masked, virtual, landline, blank, placeholder, lossy Excel and
    typo'd values are not the person's usable identifier.
    """
    n = len(pidx)
    weights = [0.0 if (c in TRAP_CATEGORIES and not adversarial) else mix.get(c, 0.0) for c in PHONE_CATEGORIES]
    cat = _choice(rng, n, weights)
    sp = _choice(rng, n, [spell.get(s, 0.0) for s in SPELLINGS])
    true = people.phone[pidx]
    # A typo changes one digit after the prefix; for "neighbour" people it lands
    # on another real customer's number, otherwise (almost surely) on nobody's.
    pos = rng.integers(3, 11, n)
    step = rng.integers(1, 10, n)
    scale = 10 ** (10 - pos)
    digit = (true // scale) % 10
    typo = true + ((digit + step) % 10 - digit) * scale
    target = people.typo_target[pidx]
    typo = np.where(target > 0, target, typo)
    placeholder = rng.integers(0, len(PLACEHOLDERS), n)
    virtual = (170 + rng.integers(0, 2, n)) * 100_000_000 + rng.integers(0, 100_000_000, n)
    extension = rng.integers(0, 10_000, n)
    landline = rng.integers(20_000_000, 90_000_000, n)
    area = _gather([r[5] for r in REGIONS], people.region[pidx])
    lossy = (true + 50_000) // 100_000  # Excel's 6 significant digits: 1.38123E+10

    cat_ok, cat_lossy, cat_masked, cat_virtual, cat_land, cat_blank, cat_ph, cat_typo = range(8)
    frame = pl.DataFrame(
        {
            "cat": cat,
            "sp": sp,
            "true": pl.Series(true).cast(pl.String),
            "typo": pl.Series(typo).cast(pl.String),
            "ph": _gather(PLACEHOLDERS, placeholder),
            "virtual": pl.Series(virtual).cast(pl.String),
            "ext": pl.Series(extension).cast(pl.String).str.zfill(4),
            "land": pl.Series(landline).cast(pl.String),
            "area": area,
            "lossy": pl.Series(lossy).cast(pl.String),
        }
    )
    col = pl.col
    lossy_tail = col("lossy").str.slice(1).str.strip_chars_end("0")
    lossy_text = pl.concat_str(
        [
            col("lossy").str.slice(0, 1),
            pl.when(lossy_tail != "").then(pl.lit(".") + lossy_tail).otherwise(pl.lit("")),
            pl.lit("E+10"),
        ]
    )
    written = (
        pl.when(col("cat") == cat_ok)
        .then(_spell(col("true"), col("sp")))
        .when(col("cat") == cat_typo)
        .then(_spell(col("typo"), col("sp")))
        .when(col("cat") == cat_lossy)
        .then(lossy_text)
        .when(col("cat") == cat_masked)
        .then(pl.concat_str([col("true").str.slice(0, 3), pl.lit("****"), col("true").str.slice(7, 4)]))
        .when(col("cat") == cat_virtual)
        .then(pl.concat_str([col("virtual"), pl.lit("-"), col("ext")]))
        .when(col("cat") == cat_land)
        .then(pl.concat_str([col("area"), pl.lit("-"), col("land")]))
        .when(col("cat") == cat_ph)
        .then(col("ph"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    key = pl.when(col("cat") == cat_ok).then(pl.lit("+86") + col("true"))
    out = frame.select(written.alias("written"), key.alias("key"))
    return out["written"], out["key"]


# ---------------------------------------------------------------------------
# Population
# ---------------------------------------------------------------------------
def _n_stores(people: int) -> int:
    return max(6, min(200, people // 5000))


def _make_stores(rng: np.random.Generator, count: int, mobiles: np.ndarray) -> Stores:
    """Stores spread over the big cities, each with its own landline and mobile."""
    region = np.arange(count) % len(REGIONS)
    within = np.arange(count) // len(REGIONS)
    codes = [f"{REGIONS[r][6]}{k + 1:03d}" for r, k in zip(region, within, strict=True)]
    names = []
    for i, (r, k) in enumerate(zip(region, within, strict=True)):
        mall = MALLS[(i * 7 + k) % len(MALLS)]
        names.append(
            f"{REGIONS[r][3]}{mall}店" if k < len(MALLS) else f"{REGIONS[r][3]}{mall}{k // len(MALLS) + 1}号店"
        )
    land = rng.integers(20_000_000, 90_000_000, count)
    landline = [f"{REGIONS[r][5]}-{x}" for r, x in zip(region, land, strict=True)]
    return Stores(pl.Series(codes), pl.Series(names), region, mobiles, pl.Series(landline))


def _make_people(rng: np.random.Generator, n: int, stores: Stores, adversarial: bool) -> People:
    """Draw the true population, then plant the identity traps among them."""
    idx = np.arange(n, dtype=np.int64)
    phone = _unique_mobiles(rng, n, taken=stores.mobile)

    start = T0 + (HISTORY * rng.random(n) ** 1.4).astype(np.int64)
    lapsed_end = start + ((REF_END - start) * rng.random(n)).astype(np.int64)
    end = np.where(rng.random(n) < 0.6, REF_END - 1, np.maximum(lapsed_end, start + DAY))
    gender = np.where(rng.random(n) < 0.52, 2, 1).astype(np.int8)
    region = _choice(rng, n, [r[7] for r in REGIONS]).astype(np.int64)

    # Names: Zipf-like surname frequencies, gendered given names of 1-2 characters.
    sur_w = 1.0 / (np.arange(len(SURNAMES)) + 3.0)
    sur = _choice(rng, n, sur_w.tolist())
    pool = GIVEN_MALE + GIVEN_FEMALE
    offset = np.where(gender == 2, len(GIVEN_MALE), 0)
    size = np.where(gender == 2, len(GIVEN_FEMALE), len(GIVEN_MALE))
    g1 = offset + (rng.random(n) * size).astype(np.int64)
    g2 = offset + (rng.random(n) * size).astype(np.int64)
    two = rng.random(n) < 0.7
    frame = pl.DataFrame(
        {
            "sur": _gather([s for s, _ in SURNAMES], sur),
            "py": _gather([p for _, p in SURNAMES], sur),
            "g1": _gather(pool, g1),
            "g2": pl.Series(_gather(pool, g2)).zip_with(pl.Series(two), pl.Series([""] * n)),
        }
    )
    name = frame.select(pl.concat_str(["sur", "g1", "g2"])).to_series()

    # Days since 1970: born around 1989 +- 9 years, clipped to 1955..2006.
    birth_days = np.clip(rng.normal(7_100, 3_300, n), -5_400, 13_500).astype(np.int32)
    birthday = pl.Series(birth_days).cast(pl.Date)

    district = rng.integers(0, 3, n)
    street = rng.integers(0, len(STREETS), n)
    number = rng.integers(1, 400, n)
    flat_districts = [d for r in REGIONS for d in r[4]]
    address = (
        pl.DataFrame(
            {
                "p": _gather([r[0] for r in REGIONS], region),
                "c": _gather([r[2] for r in REGIONS], region),
                "d": _gather(flat_districts, region * 3 + district),
                "s": _gather(STREETS, street),
                "n": pl.Series(number).cast(pl.String),
            }
        )
        .select(pl.concat_str(["p", "c", "d", "s", "n"], separator=" ") + pl.lit(" 号"))
        .to_series()
    )

    # Email: unique because the local part carries a number drawn without repeats.
    has_email = rng.random(n) < 0.35
    domain = _choice(rng, n, EMAIL_DOMAIN_P)
    sep = rng.integers(0, 3, n)
    email = (
        pl.DataFrame(
            {
                "has": has_email,
                "dom": _gather(EMAIL_DOMAINS, domain),
                "qq": pl.Series(_unique_ints(rng, n, 100_000_000, 3_000_000_000)).cast(pl.String),
                "py": frame["py"],
                "sep": _gather(["", ".", "_"], sep),
                "num": pl.Series(_unique_ints(rng, n, 1_000, max(10_000_000, 20 * n))).cast(pl.String),
            }
        )
        .select(
            pl.when(pl.col("has")).then(
                pl.when(pl.col("dom") == "qq.com")
                .then(pl.col("qq") + pl.lit("@qq.com"))
                .otherwise(pl.concat_str(["py", "sep", "num"]) + pl.lit("@") + pl.col("dom"))
            )
        )
        .to_series()
    )

    unionid = _token(idx, 101, "o6_bm")
    weibo_uid = _unique_ints(rng, n, 1_000_000_000, 7_999_999_999)
    tb = rng.random(n) < 0.5
    nick = (
        pl.DataFrame(
            {
                "tb": tb,
                "a": pl.Series(_unique_ints(rng, n, 1_000_000_000, 9_999_999_999)).cast(pl.String),
                "w": _gather(NICK_CN, rng.integers(0, len(NICK_CN), n)),
                "b": pl.Series(_unique_ints(rng, n, 100, max(100_000, 50 * n))).cast(pl.String),
            }
        )
        .select(pl.when(pl.col("tb")).then(pl.lit("tb") + pl.col("a")).otherwise(pl.col("w") + pl.col("b")))
        .to_series()
    )

    # Home store: one in the person's city when the brand has one there.
    store_region = stores.region
    order = np.argsort(store_region, kind="stable")
    per_region = np.bincount(store_region, minlength=len(REGIONS))
    first = np.concatenate([[0], np.cumsum(per_region)[:-1]])
    cnt = per_region[region]
    local_pick = order[
        np.minimum(first[region] + (rng.random(n) * np.maximum(cnt, 1)).astype(np.int64), len(order) - 1)
    ]
    any_pick = rng.integers(0, len(store_region), n)
    home_store = np.where(cnt > 0, local_pick, any_pick)

    typo_target = np.zeros(n, dtype=np.int64)
    family_phones = 0
    if adversarial and n >= 50:
        perm = rng.permutation(n)
        cursor = 0
        # Families: 2-3 people sharing one phone, each with their own ids.
        n_fam = max(2, int(n * 0.02))
        heads = perm[cursor : cursor + n_fam]
        cursor += n_fam
        sizes = np.where(rng.random(n_fam) < 0.35, 2, 1)
        members = perm[cursor : cursor + sizes.sum()]
        cursor += sizes.sum()
        phone[members] = np.repeat(phone[heads], sizes)
        family_phones = n_fam
        # Recycled numbers: the old owner was active before the operator reissued it.
        n_rec = max(1, int(n * 0.003))
        old = perm[cursor : cursor + n_rec]
        new = perm[cursor + n_rec : cursor + 2 * n_rec]
        cursor += 2 * n_rec
        phone[old] = phone[new]
        reissue = T0 + (HISTORY * (0.35 + 0.3 * rng.random(n_rec))).astype(np.int64)
        start[old] = T0 + ((reissue - 120 * DAY - T0) * rng.random(n_rec) * 0.5).astype(np.int64)
        end[old] = reissue - 90 * DAY
        start[new] = reissue + (60 * DAY * rng.random(n_rec)).astype(np.int64)
        end[new] = REF_END - 1
        # Neighbours: two customers whose numbers differ in one digit, so a typo
        # of one is the other's real number.
        n_nb = max(1, int(n * 0.005))
        a = perm[cursor : cursor + n_nb]
        b = perm[cursor + n_nb : cursor + 2 * n_nb]
        near = phone[a].copy()
        bad = np.ones(n_nb, dtype=bool)
        banned = np.concatenate([phone, stores.mobile, np.array([int(p) for p in PLACEHOLDERS])])
        while bad.any():
            k = int(bad.sum())
            pos = rng.integers(3, 11, k)
            scale = 10 ** (10 - pos)
            digit = (phone[a][bad] // scale) % 10
            near[bad] = phone[a][bad] + ((digit + rng.integers(1, 10, k)) % 10 - digit) * scale
            bad = np.isin(near, banned)
            _, first_seen = np.unique(near, return_index=True)
            dup = np.ones(n_nb, dtype=bool)
            dup[first_seen] = False
            bad |= dup
        phone[b] = near
        typo_target[a] = near
        typo_target[b] = phone[a]

    return People(
        n=n,
        phone=phone,
        typo_target=typo_target,
        start=start,
        end=end,
        gender=gender,
        region=region,
        birthday=birthday,
        name=name,
        address=address,
        email=email,
        unionid=unionid,
        weibo_uid=weibo_uid,
        buyer_nick=nick,
        home_store=home_store,
        family_phones=family_phones,
    )


def _nicknames(rng: np.random.Generator, n: int, emoji_share: float) -> pl.Series:
    """Free-text nicknames: words, emoji before or after, sometimes digits."""
    frame = pl.DataFrame(
        {
            "w": _gather(NICK_WORDS, rng.integers(0, len(NICK_WORDS), n)),
            "e": _gather(EMOJI, rng.integers(0, len(EMOJI), n)),
            "where": rng.choice(3, size=n, p=[1 - emoji_share, emoji_share * 0.7, emoji_share * 0.3]),
            "d": pl.Series(rng.integers(1, 10_000, n)).cast(pl.String),
            "digits": rng.random(n) < 0.25,
        }
    )
    base = pl.when(pl.col("digits")).then(pl.col("w") + pl.col("d")).otherwise(pl.col("w"))
    return frame.select(
        pl.when(pl.col("where") == 1)
        .then(base + pl.col("e"))
        .when(pl.col("where") == 2)
        .then(pl.col("e") + base)
        .otherwise(base)
    ).to_series()


def _name_variants(
    rng: np.random.Generator, names: pl.Series, traditional: float, spaces: float, fullwidth: float
) -> pl.Series:
    """Names as a till or form holds them: Traditional characters, stray and full-width spaces."""
    n = len(names)
    kind = _choice(
        rng,
        n,
        [
            1 - traditional - spaces - fullwidth,
            traditional,
            spaces * 0.4,
            spaces * 0.3,
            spaces * 0.3,
            fullwidth,
        ],
    )
    col = pl.col("name")
    return (
        pl.DataFrame({"name": names, "kind": kind})
        .select(
            pl.when(pl.col("kind") == 1)
            .then(col.str.replace_many(list(TRADITIONAL), list(TRADITIONAL.values())))
            .when(pl.col("kind") == 2)
            .then(pl.lit(" ") + col)
            .when(pl.col("kind") == 3)
            .then(col + pl.lit(" "))
            .when(pl.col("kind") == 4)
            .then(pl.concat_str([col.str.slice(0, 1), pl.lit(" "), col.str.slice(1)]))
            .when(pl.col("kind") == 5)
            .then(pl.concat_str([col.str.slice(0, 1), pl.lit("\u3000"), col.str.slice(1)]))
            .otherwise(col)
        )
        .to_series()
    )


def _email_variants(rng: np.random.Generator, emails: pl.Series) -> pl.Series:
    """Emails as typed: mostly as is, some capitalised, upper-cased or padded."""
    kind = _choice(rng, len(emails), [0.86, 0.07, 0.03, 0.04])
    col = pl.col("e")
    return (
        pl.DataFrame({"e": emails, "k": kind})
        .select(
            pl.when(pl.col("k") == 1)
            .then(col.str.slice(0, 1).str.to_uppercase() + col.str.slice(1))
            .when(pl.col("k") == 2)
            .then(col.str.to_uppercase())
            .when(pl.col("k") == 3)
            .then(pl.lit(" ") + col + pl.lit(" "))
            .otherwise(col)
        )
        .to_series()
    )


def _person_id(pidx: pl.Expr) -> pl.Expr:
    """Truth person id `P0000042`: opaque to the pipeline, stable per (people, seed)."""
    return pl.lit("P") + pidx.cast(pl.String).str.zfill(7)


# ---------------------------------------------------------------------------
# Channel exports
# ---------------------------------------------------------------------------
def _followers(rng: np.random.Generator, p: People, adv: bool) -> Output:
    """WeChat Official Account followers (`user/info`)."""
    pidx = np.flatnonzero(rng.random(p.n) < 0.40)
    m = len(pidx)
    # Many followed long before their shopping window; old followers still show a nickname.
    back = (rng.exponential(1.5 * 365 * DAY, m)).astype(np.int64)
    sub_time = np.maximum(p.start[pidx] - back, 1_388_534_400)  # not before 2014
    order = _rank_by_time(sub_time)
    pidx, sub_time = pidx[order], sub_time[order]
    old = sub_time < NICKNAME_CUTOFF
    has_union = rng.random(m) < 0.82
    subscribe = (rng.random(m) < 0.86).astype(np.int64)
    sex_known = rng.random(m) < 0.4
    lang = rng.random(m) < 0.5
    remark = rng.random(m) < 0.03
    tags = rng.integers(0, 4, (m, 3))
    tag_values = np.array([2, 100, 101, 102], dtype=np.int64)
    region = p.region[pidx]
    union = p.unionid.gather(pidx)
    frame = pl.DataFrame(
        {
            "openid": _token(pidx, 201, "oLVPp"),
            "unionid": union.zip_with(pl.Series(has_union), pl.Series([None] * m, dtype=pl.String)),
            "nickname": _nicknames(rng, m, 0.3).zip_with(pl.Series(old), pl.Series([""] * m)),
            "sex": np.where(sex_known & old, p.gender[pidx], 0).astype(np.int64),
            "language": np.where(lang, "zh_CN", ""),
            "city": pl.Series(_gather([r[3] for r in REGIONS], region)).zip_with(
                pl.Series(old & lang), pl.Series([""] * m)
            ),
            "province": pl.Series(_gather([r[1] for r in REGIONS], region)).zip_with(
                pl.Series(old & lang), pl.Series([""] * m)
            ),
            "country": np.where(old & lang, "中国", ""),
            "subscribe": subscribe,
            "subscribe_time": sub_time,
            "remark": _gather([""] + REMARKS, np.where(remark, rng.integers(1, len(REMARKS) + 1, m), 0)),
            "t0": tag_values[tags[:, 0]],
            "t1": tag_values[tags[:, 1]],
            "t2": tag_values[tags[:, 2]],
            "nt": rng.integers(0, 4, m),
        }
    )
    frame = frame.with_columns(
        tagid_list=pl.concat_list(
            pl.when(pl.col("nt") > 0).then("t0"),
            pl.when(pl.col("nt") > 1).then("t1"),
            pl.when(pl.col("nt") > 2).then("t2"),
        )
        .list.drop_nulls()
        .list.unique(maintain_order=True)
    ).select(HEADERS["followers"])
    keys = _keys([("unionid", frame["unionid"])])
    truth = pl.DataFrame({"record_id": frame["openid"], "pidx": pidx, "keys": keys})
    if adv:
        frame = _with_duplicates(rng, frame, 0.01)
    return Output([frame], truth)


def _miniprogram(rng: np.random.Generator, p: People, adv: bool) -> Output:
    """Mini Program members who authorised their phone (`getPhoneNumber`)."""
    pidx = np.flatnonzero(rng.random(p.n) < 0.22)
    ts = _between(rng, p.start[pidx], p.end[pidx])
    order = _rank_by_time(ts)
    pidx, ts = pidx[order], ts[order]
    m = len(pidx)
    has_union = rng.random(m) < 0.93
    hk = rng.random(m) < 0.006
    k = int(hk.sum())
    hk_num = rng.choice(len(HK_PREFIXES) * 1_000_000, size=k, replace=False)
    hk_pure = np.zeros(m, dtype=np.int64)
    hk_pure[hk] = HK_PREFIXES[hk_num // 1_000_000] * 1_000_000 + hk_num % 1_000_000
    frame = pl.DataFrame(
        {
            "pidx": pidx,
            "ts": ts,
            "hk": hk,
            "mainland": pl.Series(p.phone[pidx]).cast(pl.String),
            "hk_pure": pl.Series(hk_pure).cast(pl.String),
            "union": p.unionid.gather(pidx),
            "has_union": has_union,
            "opt": rng.random(m) < 0.55,
        }
    ).with_columns(openid=_token(pidx, 301, "oA3Xw"))
    frame = frame.select(
        "openid",
        pl.when("has_union").then("union").alias("unionid"),
        pl.when("hk").then(pl.lit("+852 ") + pl.col("hk_pure")).otherwise("mainland").alias("phoneNumber"),
        pl.when("hk").then("hk_pure").otherwise("mainland").alias("purePhoneNumber"),
        pl.when("hk").then(pl.lit("852")).otherwise(pl.lit("86")).alias("countryCode"),
        _local("ts", "%Y-%m-%dT%H:%M:%S+08:00").alias("authorized_at"),
        pl.col("opt").alias("marketing_opt_in"),
        pl.when("hk")
        .then(pl.lit("+852") + pl.col("hk_pure"))
        .otherwise(pl.lit("+86") + pl.col("mainland"))
        .alias("_phone_key"),
    )
    keys = _keys([("phone", frame["_phone_key"]), ("unionid", frame["unionid"])])
    truth = pl.DataFrame({"record_id": frame["openid"], "pidx": pidx, "keys": keys})
    frame = frame.drop("_phone_key")
    if adv:
        frame = _with_duplicates(rng, frame, 0.01)
    return Output([frame], truth)


def _weibo(rng: np.random.Generator, p: People, adv: bool) -> tuple[Output, Output, Output]:
    """Weibo users, their interactions, and campaign leads (the only uid+phone link)."""
    pidx = np.flatnonzero(rng.random(p.n) < 0.25)
    m = len(pidx)
    created = np.maximum(p.start[pidx] - rng.exponential(3 * 365 * DAY, m).astype(np.int64), WEIBO_LAUNCH)
    loc_kind = _choice(rng, m, [0.82, 0.06, 0.12])
    region = p.region[pidx]
    abroad = _gather(["海外 美国", "海外 日本", "海外 澳大利亚", "海外 英国"], rng.integers(0, 4, m))
    home = pl.Series(_gather([f"{r[1]} {r[3]}" for r in REGIONS], region))
    gender_code = np.where(rng.random(m) < 0.1, 0, p.gender[pidx])
    users = pl.DataFrame(
        {
            "idstr": pl.Series(p.weibo_uid[pidx]).cast(pl.String),
            "screen_name": _nicknames(rng, m, 0.35),
            "gender": _gather(["n", "m", "f"], gender_code),
            "loc_kind": loc_kind,
            "home": home,
            "abroad": abroad,
            "created": created,
            "followers_count": np.minimum(rng.lognormal(4.0, 1.6, m), 5_000_000).astype(np.int64),
            "verified": rng.random(m) < 0.02,
        }
    ).select(
        "idstr",
        "screen_name",
        "gender",
        pl.when(pl.col("loc_kind") == 0)
        .then("home")
        .when(pl.col("loc_kind") == 1)
        .then("abroad")
        .otherwise(pl.lit("其他"))
        .alias("location"),
        _local("created", "%a %b %d %H:%M:%S +0800 %Y").alias("created_at"),
        "followers_count",
        "verified",
    )
    uid_str = users["idstr"]
    user_truth = pl.DataFrame({"record_id": uid_str, "pidx": pidx, "keys": _keys([("weibo_uid", uid_str)])})
    users_out = users if not adv else _with_duplicates(rng, users, 0.01)

    # Interactions: long-tailed per user.
    counts = _counts(rng, m, 3.0, heavy_share=0.05, heavy_mean=20.0, zero_share=0.15)
    owner = np.repeat(np.arange(m), counts)
    ipidx = pidx[owner]
    its = _between(rng, p.start[ipidx], p.end[ipidx])
    order = _rank_by_time(its)
    owner, ipidx, its = owner[order], ipidx[order], its[order]
    k = len(owner)
    mid = 4_600_000_000_000_000 + np.arange(k, dtype=np.int64) * 997 + rng.integers(0, 997, k)
    itype = _choice(rng, k, [0.45, 0.2, 0.1, 0.25])
    comment = _gather(COMMENTS, rng.integers(0, len(COMMENTS), k))
    inter = pl.DataFrame(
        {
            "id": mid,
            "ts": its,
            "user_idstr": uid_str.gather(owner),
            "type": _gather(["comment", "repost", "mention", "like"], itype),
            "c": comment,
        }
    ).select(
        "id",
        _local("ts", "%a %b %d %H:%M:%S +0800 %Y").alias("created_at"),
        "user_idstr",
        "type",
        pl.when(pl.col("type") == "comment")
        .then("c")
        .when(pl.col("type") == "repost")
        .then(pl.lit("转发微博 //@品牌官方微博: ") + pl.col("c"))
        .when(pl.col("type") == "mention")
        .then(pl.lit("@品牌官方微博 ") + pl.col("c"))
        .otherwise(pl.lit(""))
        .alias("text"),
    )
    inter_truth = pl.DataFrame(
        {
            "record_id": inter["id"].cast(pl.String),
            "pidx": ipidx,
            "keys": _keys([("weibo_uid", inter["user_idstr"])]),
        }
    )
    inter_out = inter if not adv else _with_duplicates(rng, inter, 0.005)

    # Leads: hand-typed forms, the one place a Weibo uid meets a phone.
    lcount = np.where(rng.random(m) < 0.2, 1, 0) + np.where(rng.random(m) < 0.03, 1, 0)
    owner = np.repeat(np.arange(m), lcount)
    lpidx = pidx[owner]
    lts = _between(rng, p.start[lpidx], p.end[lpidx])
    order = _rank_by_time(lts)
    owner, lpidx, lts = owner[order], lpidx[order], lts[order]
    k = len(owner)
    written, key = _phone_column(
        rng,
        p,
        lpidx,
        {"ok": 0.9, "typo": 0.06, "placeholder": 0.04},
        {
            "plain": 0.55,
            "intl_spaced": 0.06,
            "0086_dashed": 0.02,
            "86_space": 0.04,
            "dashed": 0.08,
            "paren_plus": 0.03,
            "fullwidth": 0.05,
            "padded": 0.06,
            "e164": 0.06,
            "spaced": 0.05,
        },
        adv,
    )
    leads = (
        pl.DataFrame(
            {
                "线索编号": pl.Series(np.arange(1, k + 1)).cast(pl.String).str.zfill(8),
                "微博UID": uid_str.gather(owner),
                "姓名": _name_variants(rng, p.name.gather(lpidx), 0.0, 0.05, 0.01),
                "手机号": written,
                "ts": lts,
                "活动名称": _gather(CAMPAIGNS, rng.integers(0, len(CAMPAIGNS), k)),
                "同意营销": np.where(rng.random(k) < 0.6, "是", "否"),
            }
        )
        .with_columns(
            (pl.lit("WBL") + pl.col("线索编号")).alias("线索编号"),
            _local("ts", "%Y/%m/%d %H:%M").alias("提交时间"),
        )
        .select(HEADERS["leads"])
    )
    lead_truth = pl.DataFrame(
        {
            "record_id": leads["线索编号"],
            "pidx": lpidx,
            "keys": _keys([("weibo_uid", leads["微博UID"]), ("phone", key)]),
        }
    )
    leads_out = leads if not adv else _with_duplicates(rng, leads, 0.01)
    return Output([users_out], user_truth), Output([inter_out], inter_truth), Output([leads_out], lead_truth)


def _tmall(rng: np.random.Generator, p: People, adv: bool) -> Output:
    """Tmall seller-centre order export: stable buyer nick, mostly masked phones."""
    buyers = np.flatnonzero(rng.random(p.n) < 0.35)
    counts = _counts(rng, len(buyers), 2.0, heavy_share=0.05, heavy_mean=12.0)
    pidx = np.repeat(buyers, counts)
    created = _between(rng, p.start[pidx], p.end[pidx])
    order = _rank_by_time(created)
    pidx, created = pidx[order], created[order]
    k = len(pidx)
    age = REF_END - created
    status = np.where(rng.random(k) < 0.9, 0, 2)  # 交易成功 / 交易关闭
    status = np.where((age < 15 * DAY) & (rng.random(k) < 0.4), 1, status)  # 已发货
    status = np.where((age < DAY) & (rng.random(k) < 0.3), 3, status)  # 等待买家付款
    never_paid = (status == 3) | ((status == 2) & (rng.random(k) < 0.5))
    paid_at = created + rng.integers(10, 1_800, k)
    payable = _amount_cents(rng, k, 160.0, 0.95)
    discount = np.where(rng.random(k) < 0.3, rng.integers(5, 50, k) * 100, 0)
    paid = np.where(never_paid, 0, np.maximum(payable - discount, 1))  # unpaid orders show 0.00
    written, key = _phone_column(
        rng,
        p,
        pidx,
        {"ok": 0.11, "masked": 0.7, "virtual": 0.1, "landline": 0.03, "blank": 0.05, "lossy": 0.01},
        {"plain": 0.6, "apostrophe": 0.2, "excel": 0.12, "padded": 0.08},
        adv,
    )
    gift = rng.random(k) < 0.03
    receiver = p.name.gather(np.where(gift, rng.integers(0, p.n, k), pidx))
    frame = pl.DataFrame(
        {
            # 19 digits, rising with time like Tmall's own numbers, unique by rank.
            "order": 1_873_592_046_000_000_000
            + np.arange(k, dtype=np.int64) * 98_765_431
            + rng.integers(0, 98_765_431, k),
            "买家会员名": p.buyer_nick.gather(pidx),
            "payable": payable,
            "paid": paid,
            "sep": rng.random(k) < 0.7,
            "订单状态": _gather(["交易成功", "卖家已发货，等待买家确认", "交易关闭", "等待买家付款"], status),
            "收货人姓名": receiver,
            "收货地址": p.address.gather(pidx),
            "联系手机": written,
            "created": created,
            "paid_at": pl.Series(paid_at).zip_with(pl.Series(~never_paid), pl.Series([None] * k, dtype=pl.Int64)),
        }
    ).select(
        pl.col("order").cast(pl.String).alias("订单编号"),
        "买家会员名",
        _money(pl.col("payable"), pl.col("sep")).alias("买家应付货款"),
        _money(pl.col("paid"), pl.col("sep")).alias("实付金额"),
        "订单状态",
        "收货人姓名",
        "收货地址",
        "联系手机",
        _local("created", "%Y-%m-%d %H:%M:%S").alias("订单创建时间"),
        _local("paid_at", "%Y-%m-%d %H:%M:%S").alias("订单付款时间"),
    )
    truth = pl.DataFrame(
        {
            "record_id": frame["订单编号"],
            "pidx": pidx,
            "keys": _keys([("buyer_nick", frame["买家会员名"]), ("phone", key)]),
        }
    )
    if adv:
        frame = _with_duplicates(rng, frame, 0.01)
    return Output([frame], truth)


def _webshop(rng: np.random.Generator, p: People, adv: bool) -> Output:
    """The brand's own web shop: email-first checkout, customer-typed phones."""
    has_email = p.email.is_not_null().to_numpy()
    buyers = np.flatnonzero(rng.random(p.n) < np.where(has_email, 0.25, 0.05))
    counts = _counts(rng, len(buyers), 1.6, heavy_share=0.03, heavy_mean=8.0)
    pidx = np.repeat(buyers, counts)
    ts = _between(rng, p.start[pidx], p.end[pidx])
    order = _rank_by_time(ts)
    pidx, ts = pidx[order], ts[order]
    k = len(pidx)
    email = p.email.gather(pidx)
    written, key = _phone_column(
        rng,
        p,
        pidx,
        {"ok": 0.82, "blank": 0.15, "typo": 0.03},
        {
            "plain": 0.6,
            "intl_spaced": 0.1,
            "e164": 0.12,
            "dashed": 0.06,
            "spaced": 0.06,
            "fullwidth": 0.02,
            "plus_dash": 0.04,
        },
        adv,
    )
    frame = (
        pl.DataFrame(
            {
                "order_id": pl.Series(np.arange(10_000_001, 10_000_001 + k)).cast(pl.String),
                "customer_email": _email_variants(rng, email),
                "customer_phone": written,
                "customer_name": _name_variants(rng, p.name.gather(pidx), 0.0, 0.04, 0.0),
                "cents": _amount_cents(rng, k, 220.0, 0.8),
                "currency": pl.Series(["CNY"] * k),
                "status": _gather(["paid", "refunded", "cancelled"], _choice(rng, k, [0.85, 0.08, 0.07])),
                "ts": ts,
                "marketing_opt_in": np.where(rng.random(k) < 0.45, "true", "false"),
            }
        )
        .with_columns(
            (pl.lit("WS") + pl.col("order_id")).alias("order_id"),
            _money(pl.col("cents"), pl.lit(False)).alias("amount_cny"),
            pl.from_epoch("ts", time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("created_at"),
        )
        .select(HEADERS["webshop_orders"])
    )
    truth = pl.DataFrame(
        {"record_id": frame["order_id"], "pidx": pidx, "keys": _keys([("email", email), ("phone", key)])}
    )
    if adv:
        frame = _with_duplicates(rng, frame, 0.01).select(WEBSHOP_SHUFFLED)
    return Output([frame], truth)


def _members(rng: np.random.Generator, p: People, stores: Stores, adv: bool) -> tuple[Output, pl.DataFrame]:
    """Store membership export; also returns the card table the POS receipts use."""
    holders = np.flatnonzero(rng.random(p.n) < 0.30)
    cards = np.where(rng.random(len(holders)) < 0.08, 2, 1)
    pidx = np.repeat(holders, cards)
    second = np.zeros(len(pidx), dtype=bool)
    second[1:] = pidx[1:] == pidx[:-1]
    reg = _between(rng, p.start[pidx], p.start[pidx] + (p.end[pidx] - p.start[pidx]) // 3 + DAY)
    reg = np.where(second, _between(rng, reg, p.end[pidx]), reg)
    order = _rank_by_time(reg)
    pidx, reg, second = pidx[order], reg[order], second[order]
    k = len(pidx)
    store = np.where(second | (rng.random(k) < 0.15), rng.integers(0, len(stores.region), k), p.home_store[pidx])
    card = 8_600_000_000 + np.arange(k, dtype=np.int64) * 3 + rng.integers(0, 3, k)
    written, key = _phone_column(
        rng,
        p,
        pidx,
        {"ok": 0.89, "lossy": 0.03, "placeholder": 0.03, "typo": 0.02, "blank": 0.03},
        {
            "plain": 0.7,
            "apostrophe": 0.06,
            "excel": 0.05,
            "dashed": 0.04,
            "spaced": 0.04,
            "padded": 0.04,
            "fullwidth": 0.03,
            "intl_spaced": 0.02,
            "86_space": 0.02,
        },
        adv,
    )
    if adv:
        # Walk-ins: staff type the store's own phone on 30-60 rows of different people.
        trap_stores = rng.permutation(len(stores.region))[: max(1, int(len(stores.region) * 0.3))]
        override_rows: list[np.ndarray] = []
        override_vals: list[str] = []
        for s in trap_stores:
            rows = np.flatnonzero(store == s)
            _, first = np.unique(pidx[rows], return_index=True)
            rows = rows[np.sort(first)]
            take = rng.permutation(rows)[: int(rng.integers(30, 61))]
            use_mobile = rng.random() < 0.5
            value = str(stores.mobile[s]) if use_mobile else stores.landline[int(s)].replace("-", "")
            override_rows.append(take)
            override_vals.extend([value] * len(take))
        rows = np.concatenate(override_rows) if override_rows else np.empty(0, dtype=np.int64)
        mask = np.zeros(k, dtype=bool)
        mask[rows] = True
        fill = np.empty(k, dtype=object)
        fill[rows] = override_vals
        written = pl.Series(written).zip_with(pl.Series(~mask), pl.Series(fill.tolist(), dtype=pl.String))
        key = key.zip_with(pl.Series(~mask), pl.Series([None] * k, dtype=pl.String))
    has_email = p.email.gather(pidx).is_not_null() & pl.Series(rng.random(k) < 0.5)
    email = p.email.gather(pidx).zip_with(has_email, pl.Series([None] * k, dtype=pl.String))
    bday_fmt = _choice(rng, k, [0.35, 0.2, 0.15, 0.3])
    gender_known = rng.random(k) < 0.9
    frame = pl.DataFrame(
        {
            "会员卡号": pl.Series(card).cast(pl.String),
            "姓名": _name_variants(rng, p.name.gather(pidx), 0.1, 0.05, 0.02),
            "手机号": written,
            "性别": _gather(["", "男", "女"], np.where(gender_known, p.gender[pidx], 0)),
            "bd": p.birthday.gather(pidx),
            "bf": bday_fmt,
            "注册门店": stores.name.gather(store),
            "reg": reg,
            "邮箱": _email_variants(rng, email),
            "同意营销": np.where(rng.random(k) < 0.55, "Y", "N"),
            MEMBERS_EXTRA_COLUMN: _gather(
                ["普通会员", "银卡", "金卡", "钻石卡"], _choice(rng, k, [0.6, 0.25, 0.12, 0.03])
            ),
        }
    ).with_columns(
        pl.when(pl.col("bf") == 0)
        .then(pl.col("bd").dt.strftime("%Y-%m-%d"))
        .when(pl.col("bf") == 1)
        .then(pl.col("bd").dt.strftime("%Y/%-m/%-d"))
        .when(pl.col("bf") == 2)
        .then(pl.col("bd").dt.strftime("%Y%m%d"))
        .alias("生日"),
        _local("reg", "%Y-%m-%d %H:%M:%S").alias("注册时间"),
    )
    columns = HEADERS["members"] + ([MEMBERS_EXTRA_COLUMN] if adv else [])
    frame = frame.select(columns)
    truth = pl.DataFrame(
        {
            "record_id": frame["会员卡号"],
            "pidx": pidx,
            "keys": _keys([("member_card", frame["会员卡号"]), ("phone", key), ("email", email)]),
        }
    )
    card_table = pl.DataFrame({"card": frame["会员卡号"], "pidx": pidx, "reg": reg, "store": store})
    if adv:
        frame = _with_duplicates(rng, frame, 0.005)
    return Output([frame], truth), card_table


def _transactions(rng: np.random.Generator, p: People, stores: Stores, cards: pl.DataFrame, adv: bool) -> Output:
    """POS receipts: member cards, phones given at the till, and anonymous buyers."""
    c_pidx = cards["pidx"].to_numpy()
    counts = _counts(rng, len(c_pidx), 3.5, heavy_share=0.06, heavy_mean=25.0, zero_share=0.15)
    card_row = np.repeat(np.arange(len(c_pidx)), counts)
    pidx_a = c_pidx[card_row]
    ts_a = _between(rng, cards["reg"].to_numpy()[card_row], p.end[pidx_a])
    how = _choice(rng, len(card_row), [0.88, 0.07, 0.05])  # card only / card+phone / phone only
    card_a = cards["card"].gather(card_row)
    store_a = np.where(
        rng.random(len(card_row)) < 0.75,
        cards["store"].to_numpy()[card_row],
        rng.integers(0, len(stores.region), len(card_row)),
    )
    # Non-members who give a phone at the till.
    no_card = np.ones(p.n, dtype=bool)
    no_card[c_pidx] = False
    givers = np.flatnonzero(no_card & (rng.random(p.n) < 0.04))
    pidx_b = np.repeat(givers, rng.integers(1, 4, len(givers)))
    ts_b = _between(rng, p.start[pidx_b], p.end[pidx_b])
    store_b = np.where(
        rng.random(len(pidx_b)) < 0.7, p.home_store[pidx_b], rng.integers(0, len(stores.region), len(pidx_b))
    )
    # Anonymous receipts: a real shopper, but nothing on the receipt says who.
    n_anon = int((len(card_row) + len(pidx_b)) * 0.3)
    pidx_c = rng.integers(0, p.n, n_anon)
    ts_c = _between(rng, p.start[pidx_c], p.end[pidx_c])
    store_c = np.where(rng.random(n_anon) < 0.7, p.home_store[pidx_c], rng.integers(0, len(stores.region), n_anon))

    pidx = np.concatenate([pidx_a, pidx_b, pidx_c])
    ts = np.concatenate([ts_a, ts_b, ts_c])
    store = np.concatenate([store_a, store_b, store_c])
    mode = np.concatenate([how, np.full(len(pidx_b), 2), np.full(n_anon, 3)])
    card = pl.concat(
        [
            card_a.zip_with(pl.Series(how < 2), pl.Series([None] * len(how), dtype=pl.String)),
            pl.Series([None] * (len(pidx_b) + n_anon), dtype=pl.String),
        ]
    )
    order = _rank_by_time(ts)
    pidx, ts, store, mode = pidx[order], ts[order], store[order], mode[order]
    card = card.gather(order)
    k = len(pidx)
    written, key = _phone_column(
        rng,
        p,
        pidx,
        {"ok": 0.92, "typo": 0.03, "placeholder": 0.03, "lossy": 0.02},
        {"plain": 0.85, "dashed": 0.04, "spaced": 0.04, "padded": 0.04, "e164": 0.03},
        adv,
    )
    with_phone = pl.Series((mode == 1) | (mode == 2))
    none = pl.Series([None] * k, dtype=pl.String)
    written = written.zip_with(with_phone, none)
    key = key.zip_with(with_phone, none)
    frame = (
        pl.DataFrame(
            {
                "code": stores.code.gather(store),
                "ts": ts,
                "会员卡号": card,
                "手机号": written,
                "cents": _amount_cents(rng, k, 150.0, 0.9),
                "支付方式": _gather(["微信支付", "支付宝", "现金", "银行卡"], _choice(rng, k, [0.5, 0.3, 0.05, 0.15])),
            }
        )
        .with_columns(
            _local("ts", "%y%m%d").alias("day"),
            _local("ts", "%Y-%m-%d %H:%M:%S").alias("交易时间"),
            _money(pl.col("cents"), pl.lit(False)).alias("金额"),
        )
        .with_columns(
            (pl.int_range(pl.len()).over("code", "day") + 1).cast(pl.String).str.zfill(4).alias("seq"),
        )
        .select(
            pl.concat_str(["code", "day", "seq"], separator="-").alias("小票号"),
            pl.col("code").alias("门店编码"),
            "会员卡号",
            "手机号",
            "交易时间",
            "金额",
            "支付方式",
        )
    )
    truth = pl.DataFrame(
        {
            "record_id": frame["小票号"],
            "pidx": pidx,
            "keys": _keys([("member_card", frame["会员卡号"]), ("phone", key)]),
        }
    )
    if not adv:
        return Output([frame], truth)
    frame = _with_duplicates(rng, frame, 0.005)
    # A second delivery the same day: the newest receipts, re-sending the tail of the first.
    cut = int(frame.height * 0.92)
    overlap = max(1, int(frame.height * 0.01))
    return Output([frame[:cut], frame[max(0, cut - overlap) :]], truth)


def _service(rng: np.random.Generator, p: People, adv: bool) -> tuple[Output, Output]:
    """Customer-service tickets and satisfaction surveys (some linked to a ticket)."""
    owners = np.flatnonzero(rng.random(p.n) < 0.08)
    pidx = np.repeat(owners, _counts(rng, len(owners), 1.3, heavy_share=0.03, heavy_mean=5.0))
    created = _between(rng, p.start[pidx], p.end[pidx])
    order = _rank_by_time(created)
    pidx, created = pidx[order], created[order]
    k = len(pidx)
    category = _choice(rng, k, [0.45, 0.45, 0.1])
    topic = np.where(
        category == 0,
        _choice(rng, k, [0.3, 0.2, 0.1, 0.1, 0.2, 0.1]),
        _choice(rng, k, [0.2, 0.05, 0.05, 0.25, 0.05, 0.4]),
    )
    severity = np.where(category == 0, _choice(rng, k, [0.3, 0.45, 0.25]), _choice(rng, k, [0.8, 0.15, 0.05])) + 1
    age = REF_END - created
    status = _choice(rng, k, [0.05, 0.7, 0.25])
    status = np.where((age < 3 * DAY) & (rng.random(k) < 0.5), 0, status)
    resolved = np.minimum(created + rng.exponential(DAY, k).astype(np.int64) + 600, REF_END - 1)
    written, key = _phone_column(
        rng,
        p,
        pidx,
        {"ok": 0.91, "typo": 0.03, "landline": 0.04, "blank": 0.02},
        {"plain": 0.82, "e164": 0.08, "intl_spaced": 0.04, "dashed": 0.03, "padded": 0.03},
        adv,
    )
    tickets = pl.DataFrame(
        {
            "ticket_id": pl.Series(np.arange(1, k + 1)).cast(pl.String).str.zfill(8),
            "phone": written,
            "contact_channel": _gather(
                ["hotline", "wechat", "weibo", "store", "email"],
                _choice(rng, k, [0.45, 0.25, 0.08, 0.12, 0.1]),
            ),
            "category": _gather(["complaint", "inquiry", "praise"], category),
            "topic": _gather(["delay", "damage", "loss", "price", "attitude", "other"], topic),
            "severity": severity.astype(np.int64),
            "created": created,
            "resolved": pl.Series(resolved).zip_with(pl.Series(status != 0), pl.Series([None] * k, dtype=pl.Int64)),
            "status": _gather(["open", "resolved", "closed"], status),
        }
    ).with_columns(
        (pl.lit("TK") + pl.col("ticket_id")).alias("ticket_id"),
        _local("created", "%Y-%m-%d %H:%M:%S").alias("created_at"),
        _local("resolved", "%Y-%m-%d %H:%M:%S").alias("resolved_at"),
    )
    ticket_truth = pl.DataFrame({"record_id": tickets["ticket_id"], "pidx": pidx, "keys": _keys([("phone", key)])})

    # Surveys: half the closed tickets get one (same phone as written on the ticket),
    # plus post-delivery surveys with no ticket.
    from_ticket = np.flatnonzero((status != 0) & (rng.random(k) < 0.5))
    s_ts_a = resolved[from_ticket] + rng.integers(600, 3 * DAY, len(from_ticket))
    deliv = np.flatnonzero(rng.random(p.n) < 0.05)
    d_phone, d_key = _phone_column(
        rng,
        p,
        deliv,
        {"ok": 0.94, "typo": 0.03, "blank": 0.03},
        {"plain": 0.9, "e164": 0.05, "spaced": 0.05},
        adv,
    )
    s_ts_b = _between(rng, p.start[deliv], p.end[deliv])
    s_pidx = np.concatenate([pidx[from_ticket], deliv])
    s_ts = np.minimum(np.concatenate([s_ts_a, s_ts_b]), REF_END - 1)
    complaint = np.concatenate([category[from_ticket] == 0, np.zeros(len(deliv), dtype=bool)])
    s_phone = pl.concat([written.gather(from_ticket), d_phone])
    s_key = pl.concat([key.gather(from_ticket), d_key])
    s_ticket = pl.concat([tickets["ticket_id"].gather(from_ticket), pl.Series([None] * len(deliv), dtype=pl.String)])
    order = _rank_by_time(s_ts)
    s_pidx, s_ts, complaint = s_pidx[order], s_ts[order], complaint[order]
    s_phone, s_key, s_ticket = s_phone.gather(order), s_key.gather(order), s_ticket.gather(order)
    j = len(s_pidx)
    expected = rng.integers(3, 6, j)
    perceived = np.clip(expected + rng.integers(-2, 2, j) - complaint * rng.integers(0, 3, j), 1, 5)

    def dim() -> np.ndarray:
        return np.clip(perceived + rng.integers(-1, 2, j), 1, 5).astype(np.int64)

    surveys = (
        pl.DataFrame(
            {
                "survey_id": pl.Series(np.arange(1, j + 1)).cast(pl.String).str.zfill(8),
                "phone": s_phone,
                "ticket_id": s_ticket,
                "expected_score": expected.astype(np.int64),
                "perceived_score": perceived.astype(np.int64),
                "price": dim(),
                "timeliness": dim(),
                "quality": dim(),
                "attitude": dim(),
                "nps": np.clip(perceived * 2 + rng.integers(-2, 2, j), 0, 10).astype(np.int64),
                "ts": s_ts,
            }
        )
        .with_columns(
            (pl.lit("SV") + pl.col("survey_id")).alias("survey_id"),
            _local("ts", "%Y-%m-%d %H:%M:%S").alias("submitted_at"),
        )
        .select(HEADERS["surveys"])
    )
    survey_truth = pl.DataFrame({"record_id": surveys["survey_id"], "pidx": s_pidx, "keys": _keys([("phone", s_key)])})
    tickets = tickets.select(HEADERS["tickets"])
    if adv:
        tickets = _with_duplicates(rng, tickets, 0.01)
        surveys = _with_duplicates(rng, surveys, 0.01)
    return Output([tickets], ticket_truth), Output([surveys], survey_truth)


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------
def _write(frame: pl.DataFrame, record_type: str, path: Path) -> None:
    """Write one landing file in the encoding its channel uses."""
    if record_type in ("followers", "miniprogram"):
        buf = io.BytesIO()
        frame.write_ndjson(buf)
        # The WeChat API omits `unionid` for accounts not bound to the Open Platform.
        path.write_bytes(buf.getvalue().replace(b'"unionid":null,', b""))
    elif FILES[record_type][2] == "jsonl":
        frame.write_ndjson(path)
    elif record_type == "tmall_orders":
        path.write_bytes(frame.write_csv().encode("gb18030"))
    else:
        frame.write_csv(path, include_bom=record_type in ("members", "transactions"))


def default_truth_path(out: Path) -> Path:
    """Truth lives next to, never inside, the landing folder (the pipeline must not see it)."""
    out = Path(out)
    return out.parent / f"{out.name}-truth.csv"


def generate_landing(
    people: int,
    seed: int,
    out: Path,
    truth: Path | None = None,
    batch: str = "2026-11-21",
    adversarial: bool = True,
) -> dict:
    """Write a synthetic landing folder for `people` people and its ground truth.

    Files: ``out/<channel>/<type>-<batch>.<ext>`` for all 11 types of
    landing-formats.md (with ``adversarial`` also a second transactions delivery,
    ``transactions-<batch>-2.csv``, that repeats the tail of the first).
    Truth: CSV ``record_type,record_id,person_id,keys`` with one row per distinct
    record; ``keys`` lists the usable true identifiers as ``kind:value|...``.
    Returns stats: rows written per record type, distinct records, seconds.
    """
    t_start = time.perf_counter()
    out = Path(out)
    truth_path = Path(truth) if truth is not None else default_truth_path(out)
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    n_st = _n_stores(people)
    store_mobiles = _unique_mobiles(rng, n_st)
    stores = _make_stores(rng, n_st, store_mobiles)
    pop = _make_people(rng, people, stores, adversarial)

    rows: dict[str, int] = {}
    records: dict[str, int] = {}
    files: dict[str, int] = {}
    with truth_path.open("wb") as truth_file:
        truth_file.write(b"record_type,record_id,person_id,keys\n")

        def emit(record_type: str, output: Output) -> None:
            """Write one type's files and truth rows at once, so memory holds one type at a time."""
            channel, stem, ext = FILES[record_type]
            folder = out / channel
            folder.mkdir(parents=True, exist_ok=True)
            for i, frame in enumerate(output.frames):
                label = batch if i == 0 else f"{batch}-{i + 1}"
                path = folder / f"{stem}-{label}.{ext}"
                _write(frame, record_type, path)
                files[path.relative_to(out).as_posix()] = frame.height
            rows[record_type] = sum(f.height for f in output.frames)
            records[record_type] = output.truth.height
            output.truth.select(
                pl.lit(record_type).alias("record_type"),
                pl.col("record_id").cast(pl.String),
                _person_id(pl.col("pidx")).alias("person_id"),
                "keys",
            ).write_csv(truth_file, include_header=False)

        # Order matters only for determinism: every builder draws from the same rng.
        emit("followers", _followers(rng, pop, adversarial))
        emit("miniprogram", _miniprogram(rng, pop, adversarial))
        users, interactions, leads = _weibo(rng, pop, adversarial)
        emit("users", users)
        emit("interactions", interactions)
        emit("leads", leads)
        del users, interactions, leads
        emit("tmall_orders", _tmall(rng, pop, adversarial))
        emit("webshop_orders", _webshop(rng, pop, adversarial))
        members, cards = _members(rng, pop, stores, adversarial)
        emit("members", members)
        del members
        emit("transactions", _transactions(rng, pop, stores, cards, adversarial))
        del cards
        tickets, surveys = _service(rng, pop, adversarial)
        emit("tickets", tickets)
        emit("surveys", surveys)

    return {
        "people": people,
        "seed": seed,
        "batch": batch,
        "adversarial": adversarial,
        "rows": rows,
        "records": records,
        "total_rows": sum(rows.values()),
        "files": files,
        "truth": str(truth_path),
        "family_phones": pop.family_phones,
        "seconds": round(time.perf_counter() - t_start, 2),
    }


def main(argv: list[str] | None = None) -> None:
    """CLI: generate a landing folder and print the stats as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, required=True, help="landing folder to write")
    parser.add_argument("--truth", type=Path, default=None)
    parser.add_argument("--batch", default="2026-11-21")
    parser.add_argument("--no-adversarial", action="store_true")
    args = parser.parse_args(argv)
    stats = generate_landing(
        args.people, args.seed, args.out, args.truth, args.batch, adversarial=not args.no_adversarial
    )
    print(json.dumps(stats, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
