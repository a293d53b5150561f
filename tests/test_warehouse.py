"""The run's build copy of the warehouse: a faithful copy, however the filesystem lets it be made."""

from __future__ import annotations

import errno
import os

import duckdb
import pytest

from pipelines import warehouse
from pipelines.warehouse import Layout, clone_file, open_build


@pytest.fixture
def blob(tmp_path):
    path = tmp_path / "source.bin"
    path.write_bytes(os.urandom(3 << 20) + b"tail")  # not a multiple of any block size
    return path


def test_clone_is_byte_for_byte(blob, tmp_path):
    clone_file(blob, tmp_path / "copy.bin")
    assert (tmp_path / "copy.bin").read_bytes() == blob.read_bytes()


@pytest.mark.parametrize("refusal", [
    OSError(errno.EXDEV, "cross-device"),  # another filesystem, on kernels that refuse it
    OSError(errno.ENOSYS, "not implemented"),
])
def test_a_refused_clone_falls_back_to_an_ordinary_copy(blob, tmp_path, monkeypatch, refusal):
    def refuse(*args):
        raise refusal

    monkeypatch.setattr(os, "copy_file_range", refuse, raising=False)
    clone_file(blob, tmp_path / "copy.bin")
    assert (tmp_path / "copy.bin").read_bytes() == blob.read_bytes()


def test_a_short_clone_is_copied_again_in_full(blob, tmp_path, monkeypatch):
    real = getattr(os, "copy_file_range", None)
    calls = []

    def stops_early(src, dst, count, *args):
        calls.append(count)
        return real(src, dst, 1024) if len(calls) == 1 and real else 0

    monkeypatch.setattr(os, "copy_file_range", stops_early, raising=False)
    clone_file(blob, tmp_path / "copy.bin")
    assert calls and (tmp_path / "copy.bin").read_bytes() == blob.read_bytes()


def test_without_copy_file_range_an_ordinary_copy_is_made(blob, tmp_path, monkeypatch):
    monkeypatch.delattr(os, "copy_file_range", raising=False)
    clone_file(blob, tmp_path / "copy.bin")
    assert (tmp_path / "copy.bin").read_bytes() == blob.read_bytes()


def test_build_copy_holds_the_published_data_and_writes_to_it_stay_private(tmp_path):
    layout = Layout(tmp_path / "home")
    layout.home.mkdir()
    with duckdb.connect(str(layout.warehouse)) as con:
        con.execute("CREATE TABLE t AS SELECT range AS i FROM range(100000)")
    published = layout.warehouse.read_bytes()
    con = open_build(layout, "run-1")
    try:
        assert con.execute("SELECT count(*), sum(i) FROM t").fetchall() == [(100000, 4999950000)]
        con.execute("DELETE FROM t WHERE i % 2 = 0")
        con.execute("CHECKPOINT")
    finally:
        con.close()
        warehouse.release_writer(layout)
    assert layout.warehouse.read_bytes() == published  # a shared block is copied before DuckDB writes it


@pytest.mark.parametrize(("ram_gb", "limit"), [(64, "5GB"), (24, "5GB"), (8, "4GB"), (3, "1GB"), (1, "1GB")])
def test_duckdb_takes_5_gb_or_half_the_ram_whichever_is_less(monkeypatch, tmp_path, ram_gb, limit):
    import psutil

    class Memory:
        total = ram_gb * 2**30

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Memory())
    monkeypatch.delenv("SCV_DUCKDB_MEMORY", raising=False)
    assert warehouse.default_memory_limit() == limit
    assert warehouse.duckdb_config(Layout(tmp_path))["memory_limit"] == limit
