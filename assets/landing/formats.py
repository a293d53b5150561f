"""The eleven landing file types, declared as data.

Each :class:`FileFormat` says where a channel's files are, how they are encoded,
which column is the record id, and what every source column *is* (a
:class:`Field` role). The staging transform in :mod:`assets.landing.stage` reads
roles, not column names, so a new file type is one new entry here (plus a reader
only if it is neither CSV nor JSONL).

Personal-data roles (``phone``, ``email``, ``name``, ``address``, ``birthday``)
never reach the warehouse as text: they leave staging as tokens, ciphertext and
masked forms. Free-text roles that may hide personal data (nicknames, comments,
staff remarks) are ``drop``: they are read, counted and discarded.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Field:
    source: str
    role: str
    out: str | None = None
    required: bool = False
    options: tuple = ()


def f(source: str, role: str, out: str | None = None, required: bool = False, **options) -> Field:
    return Field(source, role, out or source, required, tuple(sorted(options.items())))


@dataclass(frozen=True)
class FileFormat:
    record_type: str
    channel: str
    pattern: str
    reader: str  # "csv" | "jsonl"
    encoding: str  # python codec name
    fields: tuple[Field, ...]
    identifiers: tuple[tuple[str, str], ...] = ()  # (identity kind, staging column)
    description: str = ""
    extra: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def id_field(self) -> Field:
        return next(x for x in self.fields if x.role == "id")

    @property
    def glob(self) -> str:
        return f"{self.channel}/{self.pattern}"


YES_NO = {"true": ["1", "true", "是", "y", "yes"], "false": ["0", "false", "否", "n", "no"]}

FORMATS: tuple[FileFormat, ...] = (
    FileFormat(
        "followers", "wechat", "followers-*.jsonl", "jsonl", "utf-8",
        (
            f("openid", "id"),
            f("unionid", "token", "unionid_token", kind="unionid"),
            f("nickname", "drop"),
            f("sex", "gender", "gender"),
            f("language", "drop"),
            f("city", "text", "city"),
            f("province", "text", "province"),
            f("country", "text", "country"),
            f("subscribe", "bool", "subscribed"),
            f("subscribe_time", "timestamp", "subscribed_at"),
            f("remark", "drop"),
            f("tagid_list", "drop"),
        ),
        identifiers=(("unionid", "unionid_token"), ("openid", "record_id")),
        description="WeChat Official Account followers (user/info API)",
    ),
    FileFormat(
        "miniprogram", "wechat", "miniprogram-*.jsonl", "jsonl", "utf-8",
        (
            f("openid", "id"),
            f("unionid", "token", "unionid_token", kind="unionid"),
            f("phoneNumber", "phone", "phone"),
            f("purePhoneNumber", "drop"),
            f("countryCode", "text", "country_code"),
            f("authorized_at", "timestamp", "authorized_at"),
            f("marketing_opt_in", "bool", "marketing_opt_in"),
        ),
        identifiers=(("phone", "phone_token"), ("unionid", "unionid_token"), ("openid", "record_id")),
        description="WeChat Mini Program members who authorised their phone",
    ),
    FileFormat(
        "users", "weibo", "users-*.jsonl", "jsonl", "utf-8",
        (
            f("idstr", "id"),
            f("screen_name", "drop"),
            f("gender", "gender", "gender"),
            f("location", "place"),
            f("created_at", "timestamp", "weibo_created_at"),
            f("followers_count", "int", "followers_count"),
            f("verified", "bool", "verified"),
        ),
        identifiers=(("weibo_uid", "record_id"),),
        description="Weibo profiles of users who interacted with the brand",
    ),
    FileFormat(
        "interactions", "weibo", "interactions-*.jsonl", "jsonl", "utf-8",
        (
            f("id", "id"),
            f("created_at", "timestamp", "event_at", required=True),
            f("user_idstr", "text", "weibo_uid", required=True),
            f("type", "text", "interaction_type"),
            f("text", "drop"),
        ),
        identifiers=(("weibo_uid", "weibo_uid"),),
        description="Comments, reposts, mentions and likes on the brand's Weibo posts",
    ),
    FileFormat(
        "leads", "weibo", "leads-*.csv", "csv", "utf-8-sig",
        (
            f("线索编号", "id"),
            f("微博UID", "text", "weibo_uid"),
            f("姓名", "name", "name"),
            f("手机号", "phone", "phone"),
            f("提交时间", "timestamp", "event_at", required=True),
            f("活动名称", "text", "campaign"),
            f("同意营销", "bool", "marketing_opt_in"),
        ),
        identifiers=(("phone", "phone_token"), ("weibo_uid", "weibo_uid")),
        description="Weibo campaign lead forms",
    ),
    FileFormat(
        "tmall_orders", "ecommerce", "tmall-orders-*.csv", "csv", "gb18030",
        (
            f("订单编号", "id"),
            f("买家会员名", "token", "buyer_nick_token", kind="buyer_nick"),
            f("买家应付货款", "amount", "payable_cny"),
            f("实付金额", "amount", "amount_cny", required=True),
            f("订单状态", "text", "order_status"),
            f("收货人姓名", "name", "name"),
            f("收货地址", "address", "address"),
            f("联系手机", "phone", "phone"),
            f("订单创建时间", "timestamp", "event_at", required=True),
            f("订单付款时间", "timestamp", "paid_at"),
        ),
        identifiers=(("phone", "phone_token"), ("buyer_nick", "buyer_nick_token")),
        description="Tmall/Taobao seller-centre order export",
    ),
    FileFormat(
        "webshop_orders", "ecommerce", "webshop-orders-*.csv", "csv", "utf-8-sig",
        (
            f("order_id", "id"),
            f("customer_email", "email", "email"),
            f("customer_phone", "phone", "phone"),
            f("customer_name", "name", "name"),
            f("amount_cny", "amount", "amount_cny", required=True),
            f("currency", "text", "currency"),
            f("status", "text", "order_status"),
            f("created_at", "timestamp", "event_at", required=True),
            f("marketing_opt_in", "bool", "marketing_opt_in"),
        ),
        identifiers=(("phone", "phone_token"), ("email", "email_token")),
        description="The brand's own web shop orders",
    ),
    FileFormat(
        "members", "store", "members-*.csv", "csv", "utf-8-sig",
        (
            f("会员卡号", "id"),
            f("姓名", "name", "name"),
            f("手机号", "phone", "phone"),
            f("性别", "gender", "gender"),
            f("生日", "birthday", "birthday"),
            f("注册门店", "text", "store"),
            f("注册时间", "timestamp", "event_at"),
            f("邮箱", "email", "email"),
            f("同意营销", "bool", "marketing_opt_in"),
        ),
        identifiers=(("phone", "phone_token"), ("email", "email_token"), ("member_card", "record_id")),
        description="Store membership (POS CRM) export",
    ),
    FileFormat(
        "transactions", "store", "transactions-*.csv", "csv", "utf-8-sig",
        (
            f("小票号", "id"),
            f("门店编码", "text", "store_code"),
            f("会员卡号", "text", "member_card"),
            f("手机号", "phone", "phone"),
            f("交易时间", "timestamp", "event_at", required=True),
            f("金额", "amount", "amount_cny", required=True),
            f("支付方式", "text", "payment_method"),
        ),
        identifiers=(("phone", "phone_token"), ("member_card", "member_card")),
        description="Store POS receipts",
    ),
    FileFormat(
        "tickets", "service", "tickets-*.csv", "csv", "utf-8-sig",
        (
            f("ticket_id", "id"),
            f("phone", "phone", "phone"),
            f("contact_channel", "text", "contact_channel"),
            f("category", "text", "category"),
            f("topic", "text", "topic"),
            f("severity", "int", "severity"),
            f("created_at", "timestamp", "event_at", required=True),
            f("resolved_at", "timestamp", "resolved_at"),
            f("status", "text", "ticket_status"),
        ),
        identifiers=(("phone", "phone_token"),),
        description="Customer-service tickets",
    ),
    FileFormat(
        "surveys", "service", "surveys-*.csv", "csv", "utf-8-sig",
        (
            f("survey_id", "id"),
            f("phone", "phone", "phone"),
            f("ticket_id", "text", "ticket_id"),
            f("expected_score", "int", "expected_score"),
            f("perceived_score", "int", "perceived_score"),
            f("price", "int", "score_price"),
            f("timeliness", "int", "score_timeliness"),
            f("quality", "int", "score_quality"),
            f("attitude", "int", "score_attitude"),
            f("nps", "int", "nps"),
            f("submitted_at", "timestamp", "event_at", required=True),
        ),
        identifiers=(("phone", "phone_token"),),
        description="Satisfaction surveys after a delivery or a ticket",
    ),
)

BY_TYPE = {fmt.record_type: fmt for fmt in FORMATS}
CHANNELS = sorted({fmt.channel for fmt in FORMATS})
