"""Incremental identity runs give exactly what a full run gives from the same previous state."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from identity import graph
from identity.graph import RESOLVE_PHASES
from tests.conftest import Graph


def snapshot(g: Graph) -> dict[str, list]:
    """Every persisted identity output, with record numbers (``rk``) replaced by the record, and each
    record's number beside it: a record keeps its number (its row key) in full and incremental runs."""
    q = g.con.execute
    key = "(SELECT record_type || ':' || record_id FROM identity.records r WHERE r.rk = t.rk)"
    region = "(SELECT min(record_type || ':' || record_id) FROM identity.records r2 WHERE r2.region = t.region)"
    tables = {
        "record_customer": "SELECT channel, record_type, record_id, customer_id, matched_by "
                           "FROM identity.record_customer",
        "registry": "SELECT customer_id, seq, created_run, status, merged_into FROM identity.customer_registry",
        "history": "SELECT old_id, new_id, run_id, reason FROM identity.customer_id_history",
        "rejected": "SELECT kind, value, reason, records, detail FROM identity.rejected_identifiers",
        "dropped": f"SELECT {key}, kind, value, reason FROM identity.dropped_links t",
        "links": f"SELECT {key}, kind, value FROM identity.links t",
        "identifiers": f"SELECT {key}, kind, value, links, strength FROM identity.identifiers t",
        "tokens": "SELECT kind, value, records FROM identity.identifier_tokens",
        # regions compared as partitions: each record with the smallest record of its region
        "records": f"SELECT rk, record_type, record_id, channel, version, {region} FROM identity.records t",
    }
    return {name: sorted(q(sql).fetchall(), key=repr) for name, sql in tables.items()}


PHONES = [f"P{i}" for i in range(8)]
PLACEHOLDERS = {"P0", "P7"}  # a placeholder is a property of the number: on every record or on none
RECORD = st.fixed_dictionaries({
    "record_type": st.sampled_from(["members", "miniprogram", "tickets", "followers", "tmall_orders"]),
    "record_id": st.integers(0, 14).map(lambda i: f"r{i}"),
    "phone": st.sampled_from([None, *PHONES]),
    "unionid": st.sampled_from([None, None, "U1", "U2", "U3"]),
    "member_card": st.sampled_from([None, None, "c1", "c2", "c3", "c4"]),
    "email": st.sampled_from([None, None, "E1", "E2"]),
    "buyer_nick": st.sampled_from([None, None, "B1", "B2"]),
    "name": st.sampled_from([None, "N1", "N2", "N3"]),
    "gender": st.sampled_from([None, "F", "M"]),
})
DELTA = st.lists(st.tuples(st.sampled_from(["add", "drop"]), RECORD), min_size=1, max_size=8)


def _apply(g: Graph, op: str, rec: dict) -> None:
    rec = dict(rec)
    rt, rid = rec.pop("record_type"), rec.pop("record_id")
    rec["phone_status"] = "placeholder" if rec["phone"] in PLACEHOLDERS else "ok"
    if op == "drop":
        if rt in g.types:
            g.con.execute(f"DELETE FROM s.{rt} WHERE record_id = ?", [rid])
        return
    if rt in g.types:
        g.redeliver(rt, rid, **rec)
    else:
        g.add(rt, rid, **rec)


# names typed by people on members only; Tmall names are receiver names (household guard only)
CONFIG = Graph.config(name_sources=("members",), receiver_name_sources=("tmall_orders",))


def _build(first: list[dict], rounds: list[list[tuple[str, dict]]], last_incremental: bool) -> tuple[Graph, object]:
    g = Graph()
    for rec in first:
        _apply(g, "add", rec)
    g.resolve(CONFIG, incremental=False)
    stats = None
    for i, delta in enumerate(rounds):
        for op, rec in delta:
            _apply(g, op, rec)
        stats = g.resolve(CONFIG, incremental=last_incremental or i < len(rounds) - 1)
    return g, stats


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(first=st.lists(RECORD, min_size=1, max_size=14), rounds=st.lists(DELTA, min_size=1, max_size=3))
def test_incremental_run_equals_full_run(first, rounds):
    incremental, stats = _build(first, rounds, last_incremental=True)
    full, _ = _build(first, rounds, last_incremental=False)
    assert snapshot(incremental) == snapshot(full)
    assert stats.extra["mode"] in ("incremental", "unchanged", "full")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(RECORD, min_size=1, max_size=16))
def test_customers_over_contracted_parts_are_the_components_over_every_link(records):
    # the customers are found over the parts the household guard joined without phones, contracted;
    # they must be exactly the components (and labels) of label propagation over every guarded link
    g = Graph()
    for rec in records:
        _apply(g, "add", rec)
    graph.build_identifiers(g.con, g.sources(), CONFIG)
    graph.number_identifiers(g.con)
    graph.apply_guards(g.con, CONFIG)
    parts = graph.apply_household_guard(g.con, CONFIG)
    graph.connected_components(g.con, links="id_links", out="every_link")
    graph.customer_components(g.con, parts)
    every_link = sorted(g.con.execute("SELECT rk, comp FROM every_link").fetchall())
    assert sorted(g.con.execute("SELECT rk, comp FROM id_components").fetchall()) == every_link


def test_delta_re_resolves_only_the_regions_it_touches():
    g = Graph()
    g.add("members", "a1", phone="PA", member_card="a1")
    g.add("tickets", "a2", phone="PA")
    g.add("members", "b1", phone="PB", member_card="b1")
    g.add("tickets", "b2", phone="PB")
    g.add("followers", "c1", unionid="UC")
    g.resolve()
    ids = {k: g.customer(*k) for k in [("members", "a1"), ("members", "b1"), ("followers", "c1")]}
    assert g.resolve().extra == {"mode": "unchanged", "records_resolved": 0}

    g.add("surveys", "a3", phone="PA")  # touches A's region only
    stats = g.resolve()
    assert stats.extra == {"mode": "incremental", "records_resolved": 3}
    assert g.customer("surveys", "a3") == ids[("members", "a1")]
    assert {k: g.customer(*k) for k in ids} == ids


def test_resolve_times_its_phases_and_only_those_it_ran():
    g = Graph()
    g.add("members", "a1", phone="PA", member_card="a1")
    g.add("tickets", "a2", phone="PA")
    started = time.perf_counter()
    full = g.resolve()
    wall = time.perf_counter() - started
    assert tuple(full.seconds) == RESOLVE_PHASES
    assert all(s >= 0 for s in full.seconds.values()) and sum(full.seconds.values()) <= wall
    unchanged = g.resolve()
    assert unchanged.extra["mode"] == "unchanged"
    assert tuple(unchanged.seconds) == ("plan", "write", "summary")  # nothing to number, guard or link


def test_redelivered_record_that_changes_its_phone_splits_like_a_full_run():
    def build(incremental: bool) -> Graph:
        g = Graph()
        g.add("members", "m1", phone="P1", member_card="m1", name="N1")
        g.add("tickets", "t1", phone="P1")
        g.add("tickets", "t2", phone="P1")
        g.add("members", "m2", phone="P2", member_card="m2", name="N2")
        g.resolve()
        g.redeliver("tickets", "t2", phone="P2")  # the desk corrected the number
        stats = g.resolve(incremental=incremental)
        assert stats.extra["mode"] == ("incremental" if incremental else "full")
        return g

    inc, full = build(True), build(False)
    assert inc.customer("tickets", "t2") == inc.customer("members", "m2") != inc.customer("members", "m1")
    assert snapshot(inc) == snapshot(full)


def test_erased_records_leave_through_an_incremental_run():
    g = Graph()
    g.add("members", "m1", phone="P1", member_card="m1")
    g.add("tickets", "t1", phone="P1")
    g.add("members", "m2", phone="P2", member_card="m2")
    g.resolve()
    g.con.execute("DELETE FROM s.tickets")
    stats = g.resolve()
    assert stats.extra["mode"] == "incremental"
    keys = g.con.execute("SELECT record_type, record_id FROM identity.records ORDER BY ALL").fetchall()
    assert keys == [("members", "m1"), ("members", "m2")]
    assert g.con.execute("SELECT count(*) FROM identity.record_customer").fetchall() == [(2,)]


def test_changed_settings_force_a_full_run():
    g = Graph()
    g.add("members", "m1", phone="P1", member_card="m1")
    g.resolve()
    g.add("tickets", "t1", phone="P1")
    assert g.resolve(Graph.config(dominance=0.7)).extra["mode"] == "full"
    g.add("tickets", "t2", phone="P1")
    assert g.resolve(Graph.config(dominance=0.7)).extra["mode"] == "incremental"


def test_a_delta_touching_most_records_runs_in_full():
    g = Graph()
    g.add("members", "m1", phone="P1", member_card="m1")
    g.add("members", "m2", phone="P2", member_card="m2")
    g.resolve()
    g.add("tickets", "t1", phone="P1")
    g.add("tickets", "t2", phone="P2")
    assert g.resolve(Graph.config(incremental_max_share=0.5)).extra["mode"] == "full"
    g.add("tickets", "t3", phone="P1")  # 3 of 5 records: over half still
    assert g.resolve(Graph.config(incremental_max_share=0.5)).extra["mode"] == "full"
    g.add("members", "m3", phone="P3", member_card="m3")  # 1 of 6
    assert g.resolve(Graph.config(incremental_max_share=0.5)).extra["mode"] == "incremental"


def test_a_record_cut_off_by_a_guard_stays_in_its_region():
    # U3 sits beside three phones; the odd ones' records lose their U3 link (r5's placeholder
    # phone cannot be the link dropped). r5 is no longer in the customer but still in the
    # region: a later record touching the region must re-judge U3 with r5 in view.
    def build(incremental: bool) -> Graph:
        g = Graph()
        g.add("followers", "r3", phone="P0", phone_status="placeholder", unionid="U3", buyer_nick="B2")
        g.add("followers", "r5", phone="P7", phone_status="placeholder", unionid="U3", member_card="c3")
        g.add("tmall_orders", "r8", phone="P0", phone_status="placeholder", unionid="U3", email="E2")
        g.add("tmall_orders", "r11", phone="P4", unionid="U3", member_card="c1")
        g.resolve(incremental=False)
        g.add("miniprogram", "r9", phone="P0", phone_status="placeholder", unionid="U1", email="E2")
        assert g.resolve(incremental=incremental).extra["mode"] == ("incremental" if incremental else "full")
        return g

    inc, full = build(True), build(False)
    regions = inc.con.execute("SELECT count(DISTINCT region) FROM identity.records").fetchall()
    assert regions == [(1,)]
    assert snapshot(inc) == snapshot(full)
