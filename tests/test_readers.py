"""Landing files as delivered: encodings, quirks, and every row accounted for."""

from __future__ import annotations

import json

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assets.landing.formats import BY_TYPE, FORMATS
from assets.landing.readers import UnreadableFile, read_file, redact
from assets.landing.stage import parse_amount, parse_timestamp, stage_frame
from identity.text import clean_text
from tests.conftest import SAMPLE_LANDING


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.record_type)
def test_every_sample_file_reads_and_stages_completely(fmt, keyring):
    for path in sorted(SAMPLE_LANDING.glob(fmt.glob)):
        result = read_file(path, fmt)
        good, bad = stage_frame(result.frame, fmt, keyring)
        assert result.delivered == good.height + bad.height + len(result.rejected)
        assert good.height > 0
        assert good["record_id"].null_count() == 0


def test_gb18030_tmall_export_with_thousands_separator(keyring):
    fmt = BY_TYPE["tmall_orders"]
    path = next(SAMPLE_LANDING.glob(fmt.glob))
    path.read_bytes().decode("gb18030")  # the sample really is GB18030
    good, _ = stage_frame(read_file(path, fmt).frame, fmt, keyring)
    assert 1299.0 in good["amount_cny"].to_list()
    assert set(good["phone_status"]) >= {"ok", "masked", "virtual", "mangled", "empty"}


def test_ragged_and_broken_rows_are_quarantined_with_line_numbers(tmp_path, keyring):
    fmt = BY_TYPE["tickets"]
    path = tmp_path / "tickets-2026-11-21.csv"
    path.write_text(
        "ticket_id,phone,contact_channel,category,topic,severity,created_at,resolved_at,status\n"
        "T1,13900139001,hotline,complaint,delay,2,2026-11-21 10:00:00,,open\n"
        "T2,13900139001,hotline\n"
        ",13900139001,hotline,inquiry,other,1,2026-11-21 10:00:00,,open\n"
        "T4,13900139001,hotline,inquiry,other,1,not a time,,open\n", encoding="utf-8")
    result = read_file(path, fmt)
    good, bad = stage_frame(result.frame, fmt, keyring)
    assert good["record_id"].to_list() == ["T1"]
    assert [(r.line, r.reason) for r in result.rejected] == [(3, "expected 9 fields, found 3")]
    assert bad["_line"].to_list() == [4, 5]
    assert bad["reason"].to_list() == ["missing record id 'ticket_id'", "cannot parse 'created_at' as timestamp"]
    assert "13900139001" not in "".join(bad["raw"].to_list())
    assert result.delivered == 4


def test_quoted_csv_with_embedded_newline_uses_the_exact_reader(tmp_path, keyring):
    fmt = BY_TYPE["leads"]
    path = tmp_path / "leads-x.csv"
    path.write_text('线索编号,微博UID,姓名,手机号,提交时间,活动名称,同意营销\n'
                    'L1,123,"王\n小明",13900139001,2026/11/21 20:15,"抽奖, 双11",是\n'
                    'L2,124,李娜,13600136002,2026/11/21 20:16,试用\n', encoding="utf-8")
    result = read_file(path, fmt)
    assert result.frame["线索编号"].to_list() == ["L1"]
    assert [r.line for r in result.rejected] == [4]


def test_bad_json_lines_are_quarantined_and_the_rest_loads(tmp_path):
    fmt = BY_TYPE["followers"]
    path = tmp_path / "followers-x.jsonl"
    path.write_text('{"openid": "o1", "subscribe": 1}\n{"openid": "o2", \n\n[1, 2]\n{"openid": "o3"}\n')
    result = read_file(path, fmt)
    assert result.frame["openid"].to_list() == ["o1", "o3"]
    assert [r.line for r in result.rejected] == [2, 4]
    assert result.delivered == 4


def test_json_values_read_as_written_whichever_parser_reads_the_file(tmp_path):
    """The whole-file parse and the per-line fallback (forced by one bad line) give the same text."""
    fmt = BY_TYPE["followers"]
    rows = [{"openid": f"o{i}", "subscribe": 1, "sex": 2} for i in range(3000)]
    rows[1] |= {"subscribe": True, "sex": 1.5, "tagid_list": [2, 101], "remark": {"a": 1}, "nickname": None}
    rows[2999] |= {"city": "上海", "late_key": 1}  # keys first seen on the last line still count
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    body = "\n".join(lines[:2] + ["  "] + lines[2:]) + "\n"  # line 3 is blank: rows keep their line numbers
    (tmp_path / "followers-a.jsonl").write_text(body)
    (tmp_path / "followers-b.jsonl").write_text(body + "{broken\n")
    whole, by_line = (read_file(tmp_path / f"followers-{x}.jsonl", fmt) for x in "ab")
    assert [r.line for r in by_line.rejected] == [3002] and not whole.rejected
    assert whole.frame.equals(by_line.frame)
    assert whole.frame.row(1, named=True) | {"_line": 0} == {
        "openid": "o1", "unionid": None, "nickname": None, "sex": "1.5", "language": None, "city": None,
        "province": None, "country": None, "subscribe": "true", "subscribe_time": None, "remark": '{"a": 1}',
        "tagid_list": "[2, 101]", "_line": 0}
    assert whole.frame["sex"][0] == "2" and whole.frame["city"][2999] == "上海"
    assert whole.frame["_line"][:4].to_list() == [1, 2, 4, 5] and whole.frame["_line"][-1] == 3001
    assert whole.extra_columns == by_line.extra_columns == ["late_key"]
    assert "unionid" in whole.missing_columns and "city" not in whole.missing_columns


def test_columns_in_another_order_extra_and_missing_columns(tmp_path):
    fmt = BY_TYPE["surveys"]
    path = tmp_path / "surveys-x.csv"
    path.write_text("phone,survey_id,submitted_at,nps,channel_extra\n13900139001,S1,2026-11-21 10:00:00,9,x\n")
    result = read_file(path, fmt)
    assert result.frame["survey_id"].to_list() == ["S1"]
    assert result.extra_columns == ["channel_extra"]
    assert "expected_score" in result.missing_columns


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"\x00\x01\x02" * 100, "binary"), ("订单编号,金额\n1,2\n".encode("gb18030"), "utf-8")],
)
def test_unreadable_files_fail_loudly_naming_the_file(tmp_path, content, message):
    path = tmp_path / "webshop-orders-bad.csv"
    path.write_bytes(content)
    with pytest.raises(UnreadableFile, match=f"webshop-orders-bad.csv.*{message}"):
        read_file(path, BY_TYPE["webshop_orders"])


def test_timestamps_of_every_channel_to_utc():
    s = pl.Series(["2026-11-21T10:02:33+08:00", "2026-11-21T02:02:33Z", "2026-11-21 10:02:33",
                   "2026/11/21 10:02", "Sat Nov 21 10:02:33 +0800 2026", "1795226553", "garbage"])
    parsed = pl.DataFrame({"s": s}).select(parse_timestamp(pl.col("s")).dt.strftime("%Y-%m-%d %H:%M"))
    got = parsed.to_series().to_list()
    assert got == ["2026-11-21 02:02"] * 6 + [None]


def test_phone_shifted_into_time_or_amount_columns_is_not_loaded_as_data():
    frame = pl.DataFrame({"s": ["13900139001", "1795226553", "1795226553000"]})
    assert frame.select(parse_timestamp(pl.col("s")).is_null()).to_series().to_list() == [True, False, False]
    assert frame.select(parse_amount(pl.col("s")).is_null()).to_series().to_list() == [True, True, True]
    assert pl.DataFrame({"s": ["1,299.00"]}).select(parse_amount(pl.col("s"))).item() == 1299.0


def test_redaction_keeps_shape_not_content():
    assert redact("王小明,13900139001,a@b.cn") == "字字字,99999999999,x@x.xx"


def test_column_timestamp_parser_agrees_with_the_expression():
    from assets.landing.stage import parse_timestamps

    values = ["2026-11-21T10:02:33+08:00", "2026-11-21 10:02:33", None, "", "Sat Nov 21 10:02:33 +0800 2026",
              "1795226553", "2026/11/21 10:02", "13900139001", "garbage", "2026-11-21T02:02:33.5Z"] * 3
    s = pl.Series("t", values)
    expected = pl.DataFrame({"t": s}).select(parse_timestamp(pl.col("t"))).to_series()
    assert parse_timestamps(s).to_list() == expected.to_list()
    assert parse_timestamps(s).null_count() == 12


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet=st.sampled_from(
    ["a", "Z", "1", " ", "\t", "\u3000", "\u00a0", "Ａ", "１", "ｶ", "ﾞ", "张", "陳", "①", "ﬁ", "\u00e9", "\u0301"]),
    max_size=6)), max_size=40))
def test_clean_text_is_nfkc_trimmed_whatever_mix_of_ascii_and_other_text(values):
    # Only non-ASCII values are normalised, and a mostly non-ASCII column all at once: either
    # way each value must come out as NFKC, trimmed, empty as null, in its own row.
    raw = pl.Series("v", values, dtype=pl.String)
    got = pl.DataFrame({"v": raw}).select(clean_text(pl.col("v"))).to_series().to_list()
    reference = pl.DataFrame({"v": raw}).select(pl.col("v").str.normalize("NFKC").str.strip_chars()).to_series()
    assert got == [None if v in (None, "") else v for v in reference.to_list()]
