"""Bad input, tried as a new user would: the whole pipeline over a corpus of malformed files.

The corpus (:mod:`tests.malformed`) holds a few hundred damaged files of all eleven
types next to the valid sample. One run of the real job over it must succeed,
account for every delivered row, record every unreadable file by name, and leave no
planted phone, email or name in the quarantine, the warehouse, the exports or
Dagster's event log. Focused tests below pin each reader and loader fix on a
small file of its own.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from assets.landing.formats import BY_TYPE, FORMATS
from assets.landing.load import ingest_new_files
from assets.landing.readers import MAX_FIELD_CHARS, UnreadableFile, read_file, redact
from tests.conftest import SAMPLE_LANDING, run_pipeline
from tests.malformed import COMMON, CSV_ONLY, JSONL_ONLY, Corpus, write_corpus

NOW = datetime(2026, 11, 23, tzinfo=UTC)


# ------------------------------------------------------------------------------------------- the leak scanner

_ESCAPED = re.compile(r"\\u([0-9a-fA-F]{4})")
_JOINED_DIGITS = re.compile(r"(?<=\d)[ -](?=\d)")
_CJK_RUN = re.compile(r"[\u3400-\u9fff]+")
_WORD_PAIR = re.compile(r"(?=(?<![a-z])([a-z]+ [a-z]+))")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def planted_in(text: str, plaintexts: set[str]) -> set[str]:
    """The planted values that occur in ``text``: phones (also spaced or dashed), emails, Chinese and Latin names.

    JSON ``\\uXXXX`` escapes are decoded first, since Dagster stores events as ASCII JSON.
    Candidates are pulled out by shape and looked up in the planted set, which keeps a scan
    of megabytes against thousands of values to a fraction of a second.
    """
    text = _ESCAPED.sub(lambda m: chr(int(m[1], 16)), text).lower()
    phones = {p for p in plaintexts if p.isdigit()}
    emails = {p.lower() for p in plaintexts if "@" in p}
    chinese = {p for p in plaintexts if _CJK_RUN.fullmatch(p)}
    latin = {p.lower() for p in plaintexts if re.fullmatch(r"[A-Za-z]+ [A-Za-z]+", p)}
    found: set[str] = set()
    for run in re.findall(r"\d{11,}", _JOINED_DIGITS.sub("", text)):
        found |= {run[i:i + 11] for i in range(len(run) - 10)} & phones
    found |= set(_EMAIL.findall(text)) & emails
    sizes = {len(n) for n in chinese}
    for run in _CJK_RUN.findall(text):
        found |= {run[i:i + k] for k in sizes for i in range(len(run) - k + 1)} & chinese
    found |= set(_WORD_PAIR.findall(text)) & latin
    return found


def test_the_leak_scanner_finds_what_was_planted(tmp_path):
    corpus = write_corpus(tmp_path)
    clean = next(f for f in corpus.files if f.kind == "crlf_mix" and f.record_type == "webshop_orders")
    text = (tmp_path / clean.path).read_bytes().decode("utf-8-sig")
    found = planted_in(text, corpus.plaintexts)
    kinds = {"phone" if p.isdigit() else "email" if "@" in p else "latin" if p.isascii() else "chinese" for p in found}
    assert kinds == {"phone", "email", "latin", "chinese"}
    assert planted_in(json.dumps(text), corpus.plaintexts) == found  # as Dagster's ASCII JSON stores it
    assert planted_in(redact(text), corpus.plaintexts) == set()


# ------------------------------------------------------------------------------------------- the corpus itself

def test_the_corpus_is_deterministic_and_covers_every_type_and_damage(tmp_path):
    def digest(folder: Path) -> dict[str, str]:
        return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    first, second = write_corpus(tmp_path / "a"), write_corpus(tmp_path / "b")
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert first.plaintexts == second.plaintexts
    assert len(first.files) >= 300
    assert {f.record_type for f in first.files} == {fmt.record_type for fmt in FORMATS}
    kinds = {f.kind for f in first.files}
    assert kinds == set(COMMON) | set(CSV_ONLY) | set(JSONL_ONLY)
    per_type = {fmt.record_type: sum(f.record_type == fmt.record_type for f in first.files) for fmt in FORMATS}
    assert min(per_type.values()) >= 20, per_type
    assert {f.expect for f in first.files} == {"loaded", "unreadable"}


# ------------------------------------------------------------------------------------ the whole pipeline over it

@dataclass
class CorpusRun:
    home: Path
    corpus: Corpus
    result: dg.ExecuteInProcessResult
    dagster_dir: Path

    def warehouse(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.home / "warehouse.duckdb"), read_only=True)


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory) -> CorpusRun:
    """One run of the real job over the sample plus the corpus, with a Dagster instance whose storage we can read."""
    from privacy.keys import init_keys

    base = tmp_path_factory.mktemp("malformed")
    home = base / "home"
    shutil.copytree(SAMPLE_LANDING, home / "landing")
    corpus = write_corpus(home / "landing")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCV_KEY_DIR", str(base / "keys"))
        mp.delenv("SCV_MASTER_KEY", raising=False)
        mp.setenv("SCV_HOME", str(home))
        mp.setenv("SCV_AS_OF", "2026-11-23")
        init_keys(base / "keys")
        (base / "dagster").mkdir()
        instance = dg.DagsterInstance.local_temp(str(base / "dagster"))
        try:
            result = run_pipeline(home, instance)
        finally:
            instance.dispose()
        yield CorpusRun(home, corpus, result, base / "dagster")


def test_the_run_succeeds_and_every_accounting_check_passes(corpus_run):
    result = corpus_run.result
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    accounting = [e for e in result.get_asset_check_evaluations() if e.check_name == "every_row_accounted"]
    assert len(accounting) == len(FORMATS)
    assert all(e.passed for e in accounting)


def test_every_corpus_file_is_in_the_ledger_with_its_expected_outcome(corpus_run):
    con = corpus_run.warehouse()
    ledger = {(t, name): (status, delivered, quarantined) for t, name, status, delivered, quarantined in con.execute(
        "SELECT record_type, file_name, status, rows_delivered, rows_quarantined FROM staging.file_ledger").fetchall()}
    wrong = []
    for f in corpus_run.corpus.files:
        got = ledger.get((f.record_type, f.path.name))
        want = (f.expect, f.delivered, f.quarantined) if f.expect == "loaded" else (f.expect,)
        if got is None or got[: len(want)] != want:
            wrong.append(f"{f.path.name}: expected {want}, got {got}")
    assert not wrong, "\n".join(wrong)
    statuses = {s for s, *_ in ledger.values()}
    assert statuses == {"loaded", "unreadable"}  # nothing 'failed' or skipped as a duplicate


def test_every_loaded_file_balances_row_for_row(corpus_run):
    con = corpus_run.warehouse()
    rows = con.execute("""
        SELECT record_type, file_name, rows_delivered, rows_loaded, rows_quarantined,
               (SELECT count(*) FROM staging.quarantine q WHERE q.source_file = l.file_name AND q.line > 0)
        FROM staging.file_ledger l WHERE status = 'loaded'""").fetchall()
    staged: dict[tuple[str, str], int] = {}
    for fmt in FORMATS:
        counts = con.execute(f"SELECT source_file, count(*) FROM staging.{fmt.record_type} GROUP BY 1").fetchall()
        staged |= {(fmt.record_type, name): n for name, n in counts}
    assert len(rows) > 200
    for record_type, name, delivered, loaded, quarantined, in_quarantine in rows:
        assert delivered == loaded + quarantined, name
        assert in_quarantine == quarantined, name
        assert staged.get((record_type, name), 0) == loaded, name


def test_every_unreadable_file_is_recorded_once_by_name(corpus_run):
    con = corpus_run.warehouse()
    unreadable = con.execute(
        "SELECT file_name, message FROM staging.file_ledger WHERE status = 'unreadable'").fetchall()
    expected = {f.path.name for f in corpus_run.corpus.files if f.expect == "unreadable"}
    assert {name for name, _ in unreadable} == expected
    for name, message in unreadable:
        assert message.startswith(f"{name}: "), message
    quarantined = con.execute("""SELECT source_file, count(*), min(reason) FROM staging.quarantine
                                 WHERE line = 0 GROUP BY 1""").fetchall()
    assert {name for name, _, _ in quarantined} == expected
    assert all(n == 1 and name in reason for name, n, reason in quarantined)


def _warehouse_text(con: duckdb.DuckDBPyConnection, exports: Path) -> dict[str, str]:
    """Every table and view of the warehouse, and every export, as text (one whole row per line).

    Identifier numbers (``iid``) are left out: a 64-bit hash of a token, whose 19 digits can hold
    a planted 11-digit phone by chance (a name token's number 188687987942453546 once did).
    """
    out = {}
    for schema, table in con.execute("""SELECT table_schema, table_name FROM information_schema.tables
                                        WHERE table_catalog = current_database()""").fetchall():
        rows = con.execute(f"""SELECT CAST(t AS VARCHAR)
                               FROM (SELECT COLUMNS(lambda c: c <> 'iid') FROM "{schema}"."{table}") t""").fetchall()
        out[f"{schema}.{table}"] = "\n".join(r[0] for r in rows)
    for parquet in sorted(exports.rglob("*.parquet")):
        rows = con.execute("SELECT CAST(t AS VARCHAR) FROM read_parquet(?) t", [str(parquet)]).fetchall()
        out[str(parquet.relative_to(exports))] = "\n".join(r[0] for r in rows)
    return out


def test_no_planted_personal_data_in_quarantine_warehouse_exports_or_event_log(corpus_run):
    planted = corpus_run.corpus.plaintexts
    con = corpus_run.warehouse()

    quarantine = "\n".join(f"{reason}\t{raw}" for reason, raw in con.execute(
        "SELECT reason, coalesce(raw_redacted, '') FROM staging.quarantine").fetchall())
    assert planted_in(quarantine, planted) == set()

    tables = _warehouse_text(con, corpus_run.home / "exports")
    leaks = {name: sorted(planted_in(text, planted))[:5] for name, text in tables.items()}
    assert {name: found for name, found in leaks.items() if found} == {}

    storage = [p for p in corpus_run.dagster_dir.rglob("*") if p.is_file()]
    event_log = "\n".join(p.read_bytes().decode("utf-8", errors="replace") for p in storage)
    assert planted_in(event_log, planted) == set()

    # The scans saw real content: corpus file names and a Chinese column name reached each place.
    whole = "\n".join(tables.values())
    assert "leads-corpus-" in whole and "'提交时间'" in quarantine  # a staging-rule reason, in Chinese
    unescaped = _ESCAPED.sub(lambda m: chr(int(m[1], 16)), event_log)
    assert "tmall-orders-corpus-" in unescaped and "备注" in unescaped  # the schema-drift warning's extra column


# --------------------------------------------------------------------------------------- focused reader tests

def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


TICKETS = "ticket_id,phone,contact_channel,category,topic,severity,created_at,resolved_at,status\n"
ROW = "T{},13900139001,hotline,complaint,delay,2,2026-11-21 10:00:00,,open\n"


def test_a_quote_left_open_costs_one_line_not_the_rest_of_the_file(tmp_path):
    rows = [ROW.format(i) for i in range(1, 6)]
    rows[1] = 'T2,13900139001,"hotline,complaint,delay,2,2026-11-21 10:00:00,,open\n'
    result = read_file(_write(tmp_path, "tickets-a.csv", (TICKETS + "".join(rows)).encode()), BY_TYPE["tickets"])
    assert result.frame["ticket_id"].to_list() == ["T1", "T3", "T4", "T5"]
    assert [(r.line, r.reason) for r in result.rejected] == [(3, "unreadable CSV row: unexpected end of data")]
    assert result.delivered == 5

    # Closed by a later quote: a multi-line "row" of the wrong width is no row.
    rows[3] = 'T4,13900139001,"hot",complaint,delay,2,2026-11-21 10:00:00,,open\n'
    result = read_file(_write(tmp_path, "tickets-b.csv", (TICKETS + "".join(rows)).encode()), BY_TYPE["tickets"])
    assert result.frame["ticket_id"].to_list() == ["T1", "T3", "T4", "T5"]
    assert [r.line for r in result.rejected] == [3]


@pytest.mark.parametrize("shape", ["plain", "quoted", "jsonl"])
def test_a_value_over_the_field_limit_is_quarantined_by_every_reader(tmp_path, shape):
    long = "王" * (MAX_FIELD_CHARS + 1)
    if shape == "jsonl":
        fmt, name = BY_TYPE["followers"], "followers-x.jsonl"
        lines = [json.dumps({"openid": f"o{i}", "nickname": long if i == 2 else "n"}, ensure_ascii=False)
                 for i in range(1, 4)]
        data = "\n".join(lines).encode()
    else:
        fmt, name = BY_TYPE["tickets"], "tickets-x.csv"
        value = f'"{long}, x"' if shape == "quoted" else long
        data = (TICKETS + ROW.format(1) + ROW.format(2).replace("delay", value) + ROW.format(3)).encode()
    result = read_file(_write(tmp_path, name, data), fmt)
    assert result.frame["_line"].to_list() == ([1, 3] if shape == "jsonl" else [2, 4])
    assert len(result.rejected) == 1 and result.delivered == 3
    assert len(result.rejected[0].raw) < 400 and "王" not in result.rejected[0].raw


def test_a_nul_byte_costs_its_row_and_nul_bytes_everywhere_cost_the_file(tmp_path):
    fmt = BY_TYPE["tickets"]
    rows = [ROW.format(i) for i in range(1, 5)]
    rows[2] = rows[2].replace("hotline", "hot\x00line")
    result = read_file(_write(tmp_path, "tickets-a.csv", (TICKETS + "".join(rows)).encode()), fmt)
    assert result.frame["ticket_id"].to_list() == ["T1", "T2", "T4"]
    assert [(r.line, r.reason) for r in result.rejected] == [(4, "NUL byte in the line (binary content)")]

    nul_rows = [r.replace("hotline", "hot\x00line") for r in rows]
    with pytest.raises(UnreadableFile, match=r"tickets-b.csv: 4 of 5 lines unreadable.*binary"):
        read_file(_write(tmp_path, "tickets-b.csv", (TICKETS + "".join(nul_rows)).encode()), fmt)

    escaped = b'{"openid": "o1"}\n{"openid": "o2", "nickname": "a\\u0000b"}\n'
    result = read_file(_write(tmp_path, "followers-x.jsonl", escaped), BY_TYPE["followers"])
    assert result.frame["openid"].to_list() == ["o1"]
    assert [(r.line, r.reason) for r in result.rejected] == [(2, "NUL character in 'nickname'")]


def test_a_file_cut_inside_a_character_loses_only_its_last_line(tmp_path):
    fmt = BY_TYPE["leads"]
    text = ("线索编号,微博UID,姓名,手机号,提交时间,活动名称,同意营销\n"
            "L1,123,王小明,13900139001,2026/11/21 20:15,试用,是\n"
            "L2,124,李娜,13600136002,2026/11/21 20:16,试用,否\n")
    data = text.encode()[: text.encode().rindex("试".encode()) + 1]  # one byte into the last row's "试"
    result = read_file(_write(tmp_path, "leads-x.csv", data), fmt)
    assert result.frame["线索编号"].to_list() == ["L1"]
    assert [r.line for r in result.rejected] == [3]
    assert "not valid utf-8-sig" in result.rejected[0].reason
    assert "李娜" not in result.rejected[0].raw and "13600136002" not in result.rejected[0].raw


def test_utf8_rows_in_a_gb18030_export_are_quarantined_not_loaded_as_mojibake(tmp_path):
    fmt = BY_TYPE["tmall_orders"]
    header = ",".join(x.source for x in fmt.fields) + "\n"
    row = "{},nick,58.00,58.00,{},张伟,,13900139001,2026-11-21 10:02:33,\n"
    utf8_row = row.format("O2", "paid").encode("utf-8")
    utf8_row.decode("gb18030")  # the trap: UTF-8 bytes of 张伟 decode as GB18030 without error
    data = (header + row.format("O1", "交易成功")).encode("gb18030") + utf8_row + row.format("O3", "").encode("gb18030")
    result = read_file(_write(tmp_path, "tmall-orders-x.csv", data), fmt)
    assert result.frame["订单编号"].to_list() == ["O1", "O3"]
    assert [(r.line, r.reason) for r in result.rejected] == [(3, "line is utf-8 text in a gb18030 file")]

    with pytest.raises(UnreadableFile, match="tmall-orders-y.csv: .*line 1: line is utf-8 text in a gb18030 file"):
        read_file(_write(tmp_path, "tmall-orders-y.csv", (header + row.format("O1", "交易成功")).encode()), fmt)


def test_a_gb18030_row_in_a_utf8_export_is_named_as_such(tmp_path):
    fmt = BY_TYPE["webshop_orders"]
    header = "order_id,customer_email,customer_phone,customer_name,amount_cny,currency,status,created_at\n"
    row = "{},a@b.cn,13900139001,{},58.00,CNY,paid,2026-11-21T01:12:45Z\n"
    data = (header + row.format("W1", "Zhang")).encode() + row.format("W2", "张伟").encode("gb18030")
    result = read_file(_write(tmp_path, "webshop-orders-x.csv", data), fmt)
    assert result.frame["order_id"].to_list() == ["W1"]
    assert [(r.line, r.reason) for r in result.rejected] == [(3, "line is gb18030 text in a utf-8-sig file")]


def test_a_missing_header_is_reported_without_the_data_row_it_found(tmp_path):
    data = "L1,123,王小明,13900139001,2026/11/21 20:15,试用,是\n".encode()
    with pytest.raises(UnreadableFile) as caught:
        read_file(_write(tmp_path, "leads-x.csv", data), BY_TYPE["leads"])
    message = str(caught.value)
    assert message.startswith("leads-x.csv: header has no record id column '线索编号' (found 7 columns:")
    assert "王小明" not in message and "13900139001" not in message and "99999999999" in message

    semicolons = "线索编号;微博UID;姓名\nL1;123;王小明\n".encode()
    with pytest.raises(UnreadableFile, match="is the delimiter not a comma"):
        read_file(_write(tmp_path, "leads-y.csv", semicolons), BY_TYPE["leads"])


def test_a_repeated_column_is_fatal_only_when_the_format_uses_it(tmp_path):
    fmt = BY_TYPE["tickets"]
    extra = TICKETS.replace("\n", ",note,note\n") + ROW.format(1).replace("\n", ",a,b\n")
    result = read_file(_write(tmp_path, "tickets-a.csv", extra.encode()), fmt)
    assert result.frame["ticket_id"].to_list() == ["T1"] and result.extra_columns == ["note"]

    used = TICKETS.replace("\n", ",phone\n") + ROW.format(1).replace("\n", ",13600136002\n")
    with pytest.raises(UnreadableFile, match=r"tickets-b.csv: header repeats column\(s\) \['phone'\]"):
        read_file(_write(tmp_path, "tickets-b.csv", used.encode()), fmt)


@pytest.mark.parametrize("data", [TICKETS.encode(), TICKETS.rstrip("\n").encode(), b"\xef\xbb\xbf" + TICKETS.encode()])
def test_a_header_only_file_loads_zero_rows(tmp_path, data):
    result = read_file(_write(tmp_path, "tickets-x.csv", data), BY_TYPE["tickets"])
    assert (result.frame.height, result.delivered, result.rejected) == (0, 0, [])


def test_lf_crlf_and_cr_mixed_and_blank_lines_are_no_rows(tmp_path):
    data = (TICKETS.replace("\n", "\r\n") + ROW.format(1) + "\r\n" + ROW.format(2).replace("\n", "\r")
            + "  \n" + ROW.format(3)).encode()
    result = read_file(_write(tmp_path, "tickets-x.csv", data), BY_TYPE["tickets"])
    assert result.frame["_line"].to_list() == [2, 4, 6] and result.delivered == 3 and not result.rejected


def test_a_json_document_is_not_json_lines_but_a_stray_array_line_is_one_row(tmp_path):
    fmt = BY_TYPE["followers"]
    objects = [{"openid": "o1"}, {"openid": "o2"}]
    with pytest.raises(UnreadableFile, match="followers-a.jsonl: the file is one JSON array"):
        read_file(_write(tmp_path, "followers-a.jsonl", json.dumps(objects, indent=2).encode()), fmt)
    with pytest.raises(UnreadableFile, match="followers-b.jsonl: no line is a JSON object"):
        read_file(_write(tmp_path, "followers-b.jsonl", b"<html>502 Bad Gateway</html>\n"), fmt)

    data = b'{"openid": "o1"}\n[{"openid": "o2"}]\nnull\n{"openid": "o3", "nickname": "a\\ud800"}\n{"openid": "o4"}\n'
    result = read_file(_write(tmp_path, "followers-c.jsonl", data), fmt)
    assert result.frame["openid"].to_list() == ["o1", "o4"]
    assert [r.line for r in result.rejected] == [2, 3, 4]
    assert [r.reason for r in result.rejected][:2] == ["JSON line is an array, not an object",
                                                     "JSON line is null, not an object"]


def test_redaction_covers_every_script_and_costs_nothing_on_a_huge_line():
    assert redact("Ｚｈａｎｇ Wéi １３９００１３９００１ 陳大文") == "xxxxx xxx 99999999999 字字字"
    huge = redact("13900139001," * 100_000, limit=30)
    assert huge.startswith("99999999999,") and huge.endswith(f"...(+{12 * 100_000 - 30} chars)")


# --------------------------------------------------------------------------------------- focused loader tests

def _ledger(con, name: str) -> tuple:
    return con.execute("SELECT status, rows_delivered, rows_loaded, rows_quarantined, message "
                       "FROM staging.file_ledger WHERE file_name = ? ORDER BY ingested_at DESC, status", [name]
                       ).fetchall()


def test_quarantine_keeps_only_the_shape_of_a_row_whose_columns_are_shifted(tmp_path, keyring):
    landing = tmp_path / "landing"
    (landing / "service").mkdir(parents=True)
    shifted = "T2,2026-11-21 10:00:00,hotline,complaint,delay,2,139 0013 9001,,open\n"  # phone and time swapped
    (landing / "service" / "tickets-x.csv").write_text(TICKETS + ROW.format(1) + shifted)
    con = duckdb.connect()
    [report] = ingest_new_files(con, landing, BY_TYPE["tickets"], keyring, "run1", NOW)
    assert (report.status, report.loaded, report.quarantined) == ("loaded", 1, 1)
    reason, raw = con.execute("SELECT reason, raw_redacted FROM staging.quarantine").fetchall()[0]
    assert reason == "cannot parse 'created_at' as timestamp"
    assert json.loads(raw) == {"ticket_id": "T2", "phone": "<redacted>", "contact_channel": "xxxxxxx",
                               "category": "xxxxxxxxx", "topic": "xxxxx", "severity": "9",
                               "created_at": "999 9999 9999", "resolved_at": None, "status": "xxxx"}


def test_an_unforeseen_error_fails_only_its_file_says_no_plaintext_and_is_retried(tmp_path, keyring, monkeypatch):
    import assets.landing.prepare as load

    landing = tmp_path / "landing"
    (landing / "service").mkdir(parents=True)
    (landing / "service" / "tickets-1.csv").write_text(TICKETS + ROW.format(1))
    (landing / "service" / "tickets-2.csv").write_text(TICKETS + ROW.format(2))
    real = load.stage_frame

    def fragile(frame: pl.DataFrame, fmt, ring, *timings):
        if "T2" in frame["ticket_id"].to_list():
            raise ValueError("could not convert '13900139001' for 王小明")  # like Polars, quoting the data
        return real(frame, fmt, ring, *timings)

    monkeypatch.setattr(load, "stage_frame", fragile)
    con = duckdb.connect()
    reports = ingest_new_files(con, landing, BY_TYPE["tickets"], keyring, "run1", NOW)
    assert [(r.file_name, r.status) for r in reports] == [("tickets-1.csv", "loaded"), ("tickets-2.csv", "failed")]
    [(status, *_, message)] = _ledger(con, "tickets-2.csv")
    assert status == "failed" and message.startswith("tickets-2.csv: could not be read (ValueError")
    assert "13900139001" not in message and "王小明" not in message
    assert con.execute("SELECT count(*) FROM staging.tickets").fetchall() == [(1,)]

    monkeypatch.setattr(load, "stage_frame", real)  # the bug is fixed: the next run picks the file up
    reports = ingest_new_files(con, landing, BY_TYPE["tickets"], keyring, "run2", NOW)
    assert [(r.file_name, r.status, r.loaded) for r in reports] == [("tickets-2.csv", "loaded", 1)]


def _one_ticket_file_loaded(tmp_path, keyring):
    """A landing folder holding one tickets file, loaded: (landing folder, the file, the connection)."""
    landing = tmp_path / "landing"
    (landing / "service").mkdir(parents=True)
    path = landing / "service" / "tickets-1.csv"
    path.write_text(TICKETS + ROW.format(1))
    con = duckdb.connect()
    ingest_new_files(con, landing, BY_TYPE["tickets"], keyring, "run1", NOW)
    return landing, path, con


def _one_second_later(path) -> None:
    import os

    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def _files_hashed(monkeypatch) -> list[str]:
    """The names of the files ingest hashes from now on."""
    import assets.landing.load as load

    hashed, real = [], load.file_sha256
    monkeypatch.setattr(load, "file_sha256", lambda p: hashed.append(p.name) or real(p))
    return hashed


def test_a_known_file_copied_again_is_hashed_once_and_never_prepared(tmp_path, keyring, monkeypatch):
    """A landing folder restored from a backup: every file has a new modification time and the old content."""
    import assets.landing.load as load

    landing, path, con = _one_ticket_file_loaded(tmp_path, keyring)
    _one_second_later(path)
    hashed, to_prepare, real_preparer = _files_hashed(monkeypatch), [], load.Preparer
    monkeypatch.setattr(load, "Preparer", lambda files, new, *rest: to_prepare.append(dict(new))
                        or real_preparer(files, new, *rest))
    assert ingest_new_files(con, landing, BY_TYPE["tickets"], keyring, "run2", NOW) == []
    assert hashed == ["tickets-1.csv"] and to_prepare == [{}]  # workers would have prepared it in full
    assert ingest_new_files(con, landing, BY_TYPE["tickets"], keyring, "run3", NOW) == []
    assert hashed == ["tickets-1.csv"]  # the ledger took the new time: the quick check knows the file again
    assert con.execute("SELECT count(*) FROM staging.file_ledger").fetchall() == [(1,)]


def test_known_files_are_not_read_again_but_a_rewritten_one_is(tmp_path, keyring, monkeypatch):
    landing, path, con = _one_ticket_file_loaded(tmp_path, keyring)
    hashed = _files_hashed(monkeypatch)
    assert ingest_new_files(con, landing, BY_TYPE["tickets"], keyring, "run2", NOW) == []
    assert hashed == []  # same name, size and mtime: not even opened
    path.write_text(TICKETS + ROW.format(2))  # re-exported in place: same size, new content and mtime
    _one_second_later(path)
    reports = ingest_new_files(con, landing, BY_TYPE["tickets"], keyring, "run3", NOW)
    assert hashed == ["tickets-1.csv"]  # once, though both the touched-file check and the load need it
    assert [(r.file_name, r.status, r.loaded) for r in reports] == [("tickets-1.csv", "loaded", 1)]
    assert con.execute("SELECT count(*) FROM staging.tickets_current").fetchall() == [(2,)]
