"""Identity rules in one place: key priority, guards, limits.

Defaults encode the brand's business rules; a TOML file named by
``SCV_IDENTITY_CONFIG`` may override any of them (see README, "Identity rules").
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

# Strongest first. ``matched_by`` names the strongest key that tied a record in,
# and survivorship prefers values reached through stronger keys.
DEFAULT_PRIORITY = ("phone", "unionid", "email", "member_card", "weibo_uid", "buyer_nick", "openid")

# (identifier kind, co-occurring kind) -> the most distinct values one identifier
# may sit beside on the same records before it is treated as shared (a store's
# own number, a family phone, a recycled number) and stops linking anything.
DEFAULT_LIMITS = {
    "phone": {"unionid": 1, "member_card": 2, "name": 1, "email": 2, "weibo_uid": 2, "buyer_nick": 2},
    "unionid": {"phone": 2},
    "email": {"phone": 2, "member_card": 2},
    "member_card": {"phone": 2},
    "weibo_uid": {"phone": 2},
    "buyer_nick": {"phone": 3},
}


# How much one occurrence of a key is worth, by source: keys a platform or a card
# reader vouches for (2) beat keys a person or a clerk typed (1, the default).
DEFAULT_STRENGTH = {
    "members.member_card": 2, "transactions.member_card": 2, "miniprogram.phone": 2, "miniprogram.unionid": 2,
    "followers.unionid": 2, "users.weibo_uid": 2, "interactions.weibo_uid": 2, "leads.weibo_uid": 2,
    "tmall_orders.buyer_nick": 2, "followers.openid": 2, "miniprogram.openid": 2,
}


@dataclass(frozen=True)
class IdentityConfig:
    priority: tuple[str, ...] = DEFAULT_PRIORITY
    limits: dict = field(default_factory=lambda: DEFAULT_LIMITS)
    # Names count towards the limits only from sources where people type their own
    # name (a Tmall receiver may be a gift recipient), and only in Chinese script.
    name_sources: tuple[str, ...] = ("members", "leads", "webshop_orders")
    # Names a parcel was addressed to (a Tmall receiver): mostly the buyer, now and then a
    # gift recipient. Never counted by the limits; the household guard compares the name
    # an account ships to on most of its orders with the names other people typed.
    receiver_name_sources: tuple[str, ...] = ("tmall_orders",)
    # Genders as the person stated them, to tell family members sharing a phone apart.
    gender_sources: tuple[str, ...] = ("members", "followers", "users")
    # Attributes the household guard compares across the records a phone joins: a
    # person's name and gender, and the accounts a platform binds to one phone
    # number each (a WeChat, Taobao or Weibo account): two of those reaching one
    # phone through different records are two people. Not email: people keep several.
    household_attributes: tuple[str, ...] = ("name", "gender", "unionid", "buyer_nick", "weibo_uid")
    # Landlines are shared by households and offices: kept, masked, but not keys.
    match_landlines: bool = False
    strengths: dict = field(default_factory=lambda: DEFAULT_STRENGTH)
    # Over a limit, the top values must hold this share of the evidence for the
    # identifier to be kept (and only the outlying links dropped).
    dominance: float = 0.6
    # An incremental run re-resolves the regions of the graph that changed records touch;
    # above this share of all records a full run is cheaper and is taken instead.
    incremental_max_share: float = 0.5
    # A component above this many records is reported as suspicious.
    max_cluster_records: int = 500
    id_prefix: str = "C"

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> IdentityConfig:
        path = path or os.environ.get("SCV_IDENTITY_CONFIG")
        if not path:
            return cls()
        data = tomllib.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown identity settings {sorted(unknown)}")
        for key in ("priority", "name_sources", "receiver_name_sources", "gender_sources", "household_attributes"):
            if key in data:
                data[key] = tuple(data[key])
        if "limits" in data:
            merged = {k: dict(v) for k, v in DEFAULT_LIMITS.items()}
            for k, v in data["limits"].items():
                merged.setdefault(k, {}).update(v)
            data["limits"] = merged
        return cls(**data)

    def strength(self, record_type: str, kind: str) -> int:
        return int(self.strengths.get(f"{record_type}.{kind}", 1))

    def rank(self, kind: str) -> int:
        return self.priority.index(kind) if kind in self.priority else len(self.priority)
