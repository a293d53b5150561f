"""Tests for the synthetic landing generator (pipelines/generate.py).

The generator is the yardstick every other part of the pipeline is measured
against, so these tests pin what the evaluator relies on: the landing contract
(names, encodings, headers), determinism, and a truth file that accounts for
every record once and only lists identifiers a pipeline can really use.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from pathlib import Path

import phonenumbers
import pytest

from pipelines.generate import FILES, HEADERS, MEMBERS_EXTRA_COLUMN, RECORD_TYPES, generate_landing

PEOPLE = 3_000
SEED = 7
BATCH = "2026-11-21"

ID_COLUMN = {
    "followers": "openid",
    "miniprogram": "openid",
    "users": "idstr",
    "interactions": "id",
    "leads": "线索编号",
    "tmall_orders": "订单编号",
    "webshop_orders": "order_id",
    "members": "会员卡号",
    "transactions": "小票号",
    "tickets": "ticket_id",
    "surveys": "survey_id",
}
ENCODING = {"tmall_orders": "gb18030", "members": "utf-8-sig", "transactions": "utf-8-sig"}


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("gen")
    out = root / "landing"
    stats = generate_landing(PEOPLE, SEED, out, batch=BATCH)
    return out, root / "landing-truth.csv", stats


def _files(out: Path, record_type: str) -> list[Path]:
    channel, stem, ext = FILES[record_type]
    return sorted((out / channel).glob(f"{stem}-*.{ext}"))


def _read(path: Path, record_type: str) -> tuple[list[str], list[dict]]:
    """Header and rows of one landing file, decoded the way its channel encodes it."""
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        return list(HEADERS[record_type]), [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in rows]
    text = path.read_bytes().decode(ENCODING.get(record_type, "utf-8"))
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def _truth(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_all_eleven_files_with_contract_names(landing):
    out, truth_path, _ = landing
    for record_type in RECORD_TYPES:
        channel, stem, ext = FILES[record_type]
        assert (out / channel / f"{stem}-{BATCH}.{ext}").is_file(), record_type
    # Truth stays outside the landing folder so the pipeline cannot see it.
    assert truth_path.is_file()
    assert not any(p.name.endswith("truth.csv") for p in out.rglob("*"))


def test_encodings_and_headers(landing):
    out, _, _ = landing
    tmall = (out / "ecommerce" / f"tmall-orders-{BATCH}.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        tmall.decode("utf-8")  # really GB18030, not UTF-8
    assert tmall.decode("gb18030").splitlines()[0] == ",".join(HEADERS["tmall_orders"])
    for record_type in ("members", "transactions"):
        for path in _files(out, record_type):
            assert path.read_bytes().startswith(b"\xef\xbb\xbf"), path
    for record_type in ("leads", "webshop_orders", "tickets", "surveys"):
        assert not _files(out, record_type)[0].read_bytes().startswith(b"\xef\xbb\xbf")
    for record_type in RECORD_TYPES:
        for path in _files(out, record_type):
            header, rows = _read(path, record_type)
            assert rows, path
            if path.suffix == ".jsonl":
                for row in rows[:200]:
                    assert set(row) <= set(HEADERS[record_type])
                    assert ID_COLUMN[record_type] in row
            elif record_type == "webshop_orders":  # adversarial: same columns, other order
                assert sorted(header) == sorted(HEADERS[record_type])
                assert header != HEADERS[record_type]
            elif record_type == "members":  # adversarial: one extra column at the end
                assert header == HEADERS[record_type] + [MEMBERS_EXTRA_COLUMN]
            else:
                assert header == HEADERS[record_type], path


def test_field_formats(landing):
    out, _, _ = landing
    _, users = _read(_files(out, "users")[0], "users")
    assert re.fullmatch(r"[A-Z][a-z]{2} [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d \+0800 \d{4}", users[0]["created_at"])
    _, leads = _read(_files(out, "leads")[0], "leads")
    assert all(re.fullmatch(r"\d{4}/\d\d/\d\d \d\d:\d\d", r["提交时间"]) for r in leads)
    _, mp = _read(_files(out, "miniprogram")[0], "miniprogram")
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", r["authorized_at"]) for r in mp)
    assert any(r["countryCode"] == "852" and r["phoneNumber"].startswith("+852 ") for r in mp)
    _, shop = _read(_files(out, "webshop_orders")[0], "webshop_orders")
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["created_at"]) for r in shop)
    assert {r["status"] for r in shop} == {"paid", "refunded", "cancelled"}
    _, tmall = _read(_files(out, "tmall_orders")[0], "tmall_orders")
    assert any("," in r["实付金额"] for r in tmall)
    assert all(re.fullmatch(r"\d{1,3}(,\d{3})*\.\d\d|\d+\.\d\d", r["实付金额"]) for r in tmall)
    assert {"交易成功", "交易关闭"} <= {r["订单状态"] for r in tmall}
    followers = _files(out, "followers")[0].read_text(encoding="utf-8").splitlines()
    parsed = [json.loads(line) for line in followers]
    assert all(isinstance(r["subscribe_time"], int) for r in parsed)
    assert any("unionid" not in r for r in parsed) and any("unionid" in r for r in parsed)
    # Mini Program and Official Account openids of one person never coincide.
    _, mp_rows = _read(_files(out, "miniprogram")[0], "miniprogram")
    assert not {r["openid"] for r in mp_rows} & {r["openid"] for r in parsed}


def test_deterministic(tmp_path, landing):
    out, truth_path, _ = landing
    again = tmp_path / "again"
    generate_landing(PEOPLE, SEED, again, batch=BATCH)
    first = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    second = {p.relative_to(again): p.read_bytes() for p in sorted(again.rglob("*")) if p.is_file()}
    assert first == second
    assert truth_path.read_bytes() == (tmp_path / "again-truth.csv").read_bytes()
    other = tmp_path / "other"
    generate_landing(PEOPLE, SEED + 1, other, batch=BATCH)
    path = Path("store") / f"members-{BATCH}.csv"
    assert (other / path).read_bytes() != first[path]


def test_truth_covers_every_record_once(landing):
    out, truth_path, stats = landing
    truth = _truth(truth_path)
    assert list(truth[0]) == ["record_type", "record_id", "person_id", "keys"]
    pairs = [(r["record_type"], r["record_id"]) for r in truth]
    assert len(pairs) == len(set(pairs)), "truth lists a record twice"
    by_type: dict[str, set[str]] = defaultdict(set)
    for record_type, record_id in pairs:
        by_type[record_type].add(record_id)
    repeated = 0
    for record_type in RECORD_TYPES:
        seen: list[str] = []
        for path in _files(out, record_type):
            seen += [row[ID_COLUMN[record_type]] for row in _read(path, record_type)[1]]
        repeated += len(seen) - len(set(seen))
        assert set(seen) == by_type[record_type], record_type
        assert stats["records"][record_type] == len(by_type[record_type])
    assert repeated > 0, "adversarial data should repeat some rows"
    assert len(_files(out, "transactions")) == 2  # a second delivery repeating the first's tail


def test_truth_keys_are_well_formed_and_valid(landing):
    _, truth_path, _ = landing
    kinds = {"phone", "unionid", "email", "member_card", "weibo_uid", "buyer_nick"}
    phones = set()
    for row in _truth(truth_path):
        assert re.fullmatch(r"P\d{7,}", row["person_id"])
        for key in filter(None, row["keys"].split("|")):
            kind, _, value = key.partition(":")
            assert kind in kinds and value, key
            if kind == "phone":
                phones.add(value)
            if kind == "email":
                assert value == value.strip().lower()
    assert phones
    for value in phones:
        assert value.startswith("+")
        number = phonenumbers.parse(value)
        assert phonenumbers.is_valid_number(number), value
        assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == value


def test_keys_match_what_is_written(landing):
    """Where a row carries a plain 11-digit phone, the truth phone key (if any) is that number."""
    out, truth_path, _ = landing
    truth = {(r["record_type"], r["record_id"]): r["keys"] for r in _truth(truth_path)}
    phone_col = {
        "members": "手机号",
        "leads": "手机号",
        "tickets": "phone",
        "webshop_orders": "customer_phone",
    }
    checked = 0
    for record_type, column in phone_col.items():
        for row in _read(_files(out, record_type)[0], record_type)[1]:
            keys = truth[(record_type, row[ID_COLUMN[record_type]])].split("|")
            phone_keys = [k[6:] for k in keys if k.startswith("phone:")]
            written = row[column]
            if re.fullmatch(r"1\d{10}", written) and phone_keys:
                assert phone_keys == ["+86" + written]
                checked += 1
            if re.fullmatch(r"\d{3}\*{4}\d{4}|1\.\d{1,5}E\+10|1\d{10}-\d{4}", written.strip()):
                assert not phone_keys, (record_type, written)
    assert checked > 100
    # Card, unionid and uid keys are the values written on the row.
    for row in _read(_files(out, "members")[0], "members")[1]:
        assert f"member_card:{row['会员卡号']}" in truth[("members", row["会员卡号"])]


def test_adversarial_traps_present(landing):
    out, truth_path, _ = landing
    _, tmall = _read(_files(out, "tmall_orders")[0], "tmall_orders")
    phones = [r["联系手机"] for r in tmall]
    assert sum(bool(re.fullmatch(r"1\d\d\*{4}\d{4}", p)) for p in phones) > len(phones) / 2
    assert any(re.fullmatch(r"1\d{10}-\d{4}", p) for p in phones)  # privacy virtual number
    _, members = _read(_files(out, "members")[0], "members")
    written = [r["手机号"] for r in members]
    assert any(p in {"13800138000", "11111111111", "12345678901", "00000000000"} for p in written)
    assert any(re.fullmatch(r"1\.\d+E\+10", p) for p in written)  # Excel mangling
    assert any(re.search(r"[\u3000 ]", r["姓名"]) for r in members)
    assert any(re.search("[陳張劉黃趙]", r["姓名"]) for r in members)
    # A store's own number typed on 30-60 member rows.
    counts: dict[str, int] = defaultdict(int)
    for p in written:
        counts[p] += 1
    assert any(
        30 <= c <= 60 and p not in {"13800138000", "11111111111", "12345678901", "00000000000", ""}
        for p, c in counts.items()
    )
    # At least one true phone shared by 2+ people (families, recycled numbers).
    owners: dict[str, set[str]] = defaultdict(set)
    for row in _truth(truth_path):
        for key in filter(None, row["keys"].split("|")):
            if key.startswith("phone:"):
                owners[key].add(row["person_id"])
    assert any(len(people) >= 2 for people in owners.values())
    # Emoji nicknames on WeChat/Weibo.
    text = _files(out, "users")[0].read_text(encoding="utf-8")
    assert re.search("[\U0001f300-\U0001faff]", text)


def test_non_adversarial_is_clean(tmp_path):
    out = tmp_path / "clean"
    stats = generate_landing(1_000, 3, out, adversarial=False)
    assert stats["rows"] == stats["records"]  # no repeated rows
    assert len(_files(out, "transactions")) == 1
    header, members = _read(_files(out, "members")[0], "members")
    assert header == HEADERS["members"]
    assert not any(r["手机号"] in {"13800138000", "11111111111", "12345678901"} for r in members)
