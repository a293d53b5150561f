"""Hand-made identity graphs: one test per rule of the identity card."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from identity.config import IdentityConfig
from identity.graph import resolve
from tests.conftest import NOW


@pytest.mark.parametrize("household", [True, False], ids=["household guard", "no household guard"])
def test_chain_merge_through_different_keys(graph, household):
    # A-B share a phone, B-C a unionid, C-D an email: one person across four channels. Without the
    # household guard the customers are found over every link, not over its parts.
    graph.add("members", "m1", phone="P1", member_card="m1")
    graph.add("miniprogram", "mp1", phone="P1", unionid="U1")
    graph.add("followers", "f1", unionid="U1")
    graph.add("webshop_orders", "w1", email="E1")
    graph.add("members", "m2", email="E1", member_card="m2", phone="P1")
    graph.resolve(None if household else graph.config(household_attributes=()))
    assert graph.groups() == {frozenset({"members:m1", "miniprogram:mp1", "followers:f1", "webshop_orders:w1",
                                         "members:m2"})}


def test_long_chain_converges(graph):
    # 60 records, each tied only to the next: many propagation rounds, one customer.
    for i in range(60):
        graph.add("tickets", f"t{i}", phone=f"P{i}", email=f"E{i + 1}" if i % 2 else None,
                  buyer_nick=f"N{i + 1}" if i % 2 == 0 else None)
        graph.add("leads", f"l{i}", phone=f"P{i}", email=f"E{i}" if i % 2 == 0 else None,
                  buyer_nick=f"N{i}" if i % 2 else None)
    stats = graph.resolve()
    assert len(graph.groups()) == 1
    assert stats.iterations >= 3


def test_a_kind_named_twice_by_a_source_is_one_identifier_per_record(graph):
    # a source with two phone columns (here the same one twice) lists each record's phone once,
    # so link counts and the guards' support count records, not columns
    graph.add("tickets", "t1", phone="P1")
    graph.add("tickets", "t2", phone="P1")
    (tickets,) = graph.sources()
    twice = replace(tickets, identifiers=(*tickets.identifiers, ("phone", "phone_token")))
    resolve(graph.con, [twice], graph.config(), "run1", NOW, incremental=False)
    rows = graph.con.execute("SELECT rk, kind, value FROM identity.identifiers WHERE kind = 'phone'").fetchall()
    assert len(rows) == len(set(rows)) == 2
    assert graph.con.execute("SELECT records FROM identity.identifier_tokens WHERE kind = 'phone'"
                             ).fetchall() == [(2,)]
    assert len(graph.groups()) == 1


def test_family_phone_with_two_unionids_is_not_a_key(graph):
    graph.add("miniprogram", "mpA", phone="FAM", unionid="UA")
    graph.add("miniprogram", "mpB", phone="FAM", unionid="UB")
    graph.add("followers", "fA", unionid="UA")
    graph.add("followers", "fB", unionid="UB")
    graph.add("tickets", "t1", phone="FAM")
    graph.resolve()
    assert graph.customer("followers", "fA") == graph.customer("miniprogram", "mpA")
    assert graph.customer("followers", "fB") == graph.customer("miniprogram", "mpB")
    assert graph.customer("miniprogram", "mpA") != graph.customer("miniprogram", "mpB")
    # the ticket carries only the shared phone: it is not forced into either customer
    assert graph.customer("tickets", "t1") is None
    rejected = graph.con.execute("SELECT kind, value, reason, detail FROM identity.rejected_identifiers").fetchall()
    assert rejected == [("phone", "FAM", "shared identifier over cardinality limit", "2 distinct unionid (limit 1)")]


def test_store_phone_on_fifty_member_cards_merges_nobody(graph):
    for i in range(50):
        graph.add("members", f"card{i}", phone="STORE", member_card=f"card{i}", name=f"name{i}")
    graph.resolve()
    customers = {graph.customer("members", f"card{i}") for i in range(50)}
    assert len(customers) == 50 and None not in customers
    detail = graph.con.execute("SELECT detail FROM identity.rejected_identifiers WHERE value = 'STORE'").fetchall()
    assert detail == [("50 distinct member_card (limit 2); 50 distinct name (limit 1)",)]


def test_typo_phone_on_one_receipt_drops_only_that_link(graph):
    # card 1's holder uses phone P1; one receipt has a mistyped phone that is a stranger's number
    graph.add("members", "c1", phone="P1", member_card="c1", name="N1")
    for i in range(4):
        graph.add("transactions", f"r{i}", phone="P1", member_card="c1")
    graph.add("transactions", "typo", phone="P2", member_card="c1")
    graph.add("transactions", "typo2", phone="P3", member_card="c1")
    graph.add("members", "c2", phone="P2", member_card="c2", name="N2")
    graph.resolve()
    holder = graph.customer("members", "c1")
    assert {graph.customer("transactions", r) for r in ("r0", "r3", "typo", "typo2")} == {holder}
    assert graph.customer("members", "c2") != holder  # the stranger is not pulled in
    assert graph.con.execute("SELECT count(*) FROM identity.rejected_identifiers").fetchall() == [(0,)]
    dropped = graph.con.execute("SELECT kind, value FROM identity.dropped_links ORDER BY value").fetchall()
    assert dropped == [("phone", "P2"), ("phone", "P3")]


def test_family_member_card_beside_a_dominant_phone_keeps_its_own_customer(graph):
    graph.add("members", "dad", phone="P", member_card="dad", name="Dad")
    for i in range(5):
        graph.add("transactions", f"d{i}", phone="P", member_card="dad")
    graph.add("members", "kid", phone="P", member_card="kid", name="Kid")
    graph.add("transactions", "k1", member_card="kid")
    graph.resolve()
    assert graph.customer("members", "kid") == graph.customer("transactions", "k1")
    assert graph.customer("members", "kid") != graph.customer("members", "dad")


def test_household_phone_is_caught_through_names_on_other_records(graph):
    # the shared phone never sits beside a name: the names come through each person's own card
    graph.add("members", "cardA", member_card="cardA", name="NA")
    graph.add("transactions", "tA", member_card="cardA", phone="HOME")
    graph.add("members", "cardB", member_card="cardB", name="NB")
    graph.add("transactions", "tB", member_card="cardB", phone="HOME")
    graph.add("tickets", "t1", phone="HOME")
    graph.resolve()
    assert graph.customer("members", "cardA") != graph.customer("members", "cardB")
    assert graph.customer("tickets", "t1") is None
    reasons = graph.con.execute("SELECT reason FROM identity.rejected_identifiers WHERE value = 'HOME'").fetchall()
    assert reasons == [("shared identifier: joins people with different names",)]


def test_household_phone_is_caught_through_genders(graph):
    graph.add("followers", "fA", unionid="UA", gender="female")
    graph.add("miniprogram", "mpA", unionid="UA", phone="HOME")
    graph.add("members", "cardB", member_card="cardB", gender="male", phone="HOME")
    graph.resolve()
    assert graph.customer("followers", "fA") == graph.customer("miniprogram", "mpA")
    assert graph.customer("miniprogram", "mpA") != graph.customer("members", "cardB")


@pytest.mark.parametrize("record_type, kind, people", [
    ("tmall_orders", "buyer_nick", 2),  # Tmall binds one phone per account: two accounts are two people
    ("webshop_orders", "email", 1),  # people keep several emails: still one customer
])
def test_two_accounts_behind_one_phone(graph, record_type, kind, people):
    # no names, no genders: each account reaches the phone on another record of its own
    for account in ("A", "B"):
        graph.add(record_type, f"{account}1", **{kind: account})
        graph.add(record_type, f"{account}2", phone="HOME", **{kind: account})
    graph.resolve()
    assert graph.customer(record_type, "A1") == graph.customer(record_type, "A2")
    assert len(graph.groups()) == people
    reasons = graph.con.execute("SELECT reason FROM identity.rejected_identifiers WHERE value = 'HOME'").fetchall()
    assert reasons == ([] if people == 1 else [(f"shared identifier: joins people with different {kind}s",)])


def test_household_kinds_are_judged_in_config_order(graph):
    # names: NA on three HOME records, NB on one -> NA dominates, only NB's link drops;
    # genders: female on three, male on three -> nobody dominates, the phone is rejected for genders
    graph.add("members", "cardA", member_card="cardA", name="NA", gender="female")
    graph.add("members", "cardC", member_card="cardC", gender="male")
    for card, n in (("cardA", 3), ("cardC", 3)):
        for i in range(n):
            graph.add("transactions", f"{card}-{i}", member_card=card, phone="HOME")
    graph.add("leads", "leadB", email="eB", name="NB")  # a third person, reached through an email
    graph.add("webshop_orders", "oB", email="eB", phone="HOME")
    graph.resolve()
    con = graph.con
    assert con.execute("SELECT reason, records FROM identity.rejected_identifiers WHERE value = 'HOME'"
                       ).fetchall() == [("shared identifier: joins people with different genders", 7)]
    assert con.execute("""SELECT r.record_id, d.reason FROM identity.dropped_links d JOIN identity.records r
                          USING (rk) WHERE d.value = 'HOME'""").fetchall() == [
        ("oB", "phone shared with a person of another name elsewhere")]
    assert len({graph.customer(t, r) for t, r in (("members", "cardA"), ("leads", "leadB"), ("members", "cardC"))}) == 3


# Tmall receiver names as configured by default: household guard only, never the record limits
RECEIVERS = IdentityConfig(name_sources=("members",), gender_sources=())


def test_household_phone_is_caught_through_tmall_receiver_names(graph):
    # a member card (NA) and a Tmall account shipping to NB meet only on a family phone
    graph.add("members", "cardA", member_card="cardA", name="NA")
    for i in range(2):
        graph.add("transactions", f"tA{i}", member_card="cardA", phone="HOME")
    graph.add("tmall_orders", "oB0", buyer_nick="B", name="NB", phone="HOME")
    graph.add("tmall_orders", "oB1", buyer_nick="B", name="NB")
    graph.resolve(RECEIVERS)
    assert graph.customer("tmall_orders", "oB0") == graph.customer("tmall_orders", "oB1")
    assert graph.customer("tmall_orders", "oB0") != graph.customer("members", "cardA")
    assert graph.customer("transactions", "tA0") == graph.customer("members", "cardA")
    assert graph.con.execute("SELECT reason FROM identity.dropped_links WHERE value = 'HOME'").fetchall() == [
        ("phone shared with a person of another name elsewhere",)]


def test_a_gift_order_does_not_split_the_buyer(graph):
    # the buyer ships to themselves on three orders and once to a friend, on the order carrying the phone
    graph.add("members", "card", member_card="card", name="NA", phone="P")
    for i in range(3):
        graph.add("tmall_orders", f"own{i}", buyer_nick="A", name="NA")
    graph.add("tmall_orders", "gift", buyer_nick="A", name="FRIEND", phone="P")
    graph.resolve(RECEIVERS)
    assert len(graph.groups()) == 1
    assert graph.con.execute("SELECT count(*) FROM identity.rejected_identifiers").fetchall() == [(0,)]
    assert graph.con.execute("SELECT count(*) FROM identity.dropped_links").fetchall() == [(0,)]


def test_stranger_typo_on_one_order_does_not_cost_the_owner_their_phone(graph):
    # the owner's Tmall account carries the phone on three orders, a stranger's typo on one
    for n in range(3):
        graph.add("tmall_orders", f"own{n}", buyer_nick="owner", phone="P")
    graph.add("members", "card", member_card="card", phone="P")
    graph.add("tmall_orders", "typo", buyer_nick="stranger", phone="P")
    graph.add("tmall_orders", "s2", buyer_nick="stranger")
    graph.resolve()
    assert graph.customer("tmall_orders", "own0") == graph.customer("members", "card")
    assert graph.customer("tmall_orders", "typo") == graph.customer("tmall_orders", "s2")
    assert graph.customer("tmall_orders", "typo") != graph.customer("members", "card")
    assert graph.con.execute("SELECT reason FROM identity.dropped_links WHERE value = 'P'").fetchall() == [
        ("phone shared with a person of another buyer_nick elsewhere",)]


def test_one_person_with_one_name_everywhere_keeps_the_phone(graph):
    graph.add("members", "card", member_card="card", name="N", phone="P")
    graph.add("webshop_orders", "w", email="E", name="N", phone="P")
    graph.add("miniprogram", "mp", unionid="U", phone="P")
    graph.resolve()
    assert len(graph.groups()) == 1


def test_recycled_number_does_not_join_its_old_and_new_owner(graph):
    # the operator gave the old owner's number to a new person: both registered it, with their own names
    graph.add("members", "old", member_card="old", phone="REUSED", name="Old Owner")
    graph.add("transactions", "o1", member_card="old", phone="REUSED")
    graph.add("members", "new", member_card="new", phone="REUSED", name="New Owner")
    graph.add("miniprogram", "n1", unionid="UN", phone="REUSED")
    graph.resolve()
    assert graph.customer("members", "old") == graph.customer("transactions", "o1")
    assert graph.customer("members", "old") != graph.customer("members", "new")
    assert graph.con.execute("SELECT count(*) FROM identity.rejected_identifiers WHERE value = 'REUSED'"
                             ).fetchall() == [(1,)]


def test_placeholder_phone_is_audited_and_never_links(graph):
    graph.add("members", "a", phone="PLACEHOLDER", phone_status="placeholder", member_card="a")
    graph.add("members", "b", phone="PLACEHOLDER", phone_status="placeholder", member_card="b")
    graph.resolve()
    assert graph.customer("members", "a") != graph.customer("members", "b")
    assert graph.con.execute("SELECT reason, records FROM identity.rejected_identifiers").fetchall() == [
        ("placeholder or blocklisted number", 2)]


def test_landline_is_not_a_key_unless_configured(graph):
    graph.con.execute("SELECT 1")
    graph.add("tmall_orders", "o1", phone="LAND", buyer_nick="n1")
    graph.add("tickets", "t1", phone="LAND")
    graph.con.execute("UPDATE s.tmall_orders SET phone_is_mobile = FALSE")
    graph.con.execute("UPDATE s.tickets SET phone_is_mobile = FALSE")
    graph.resolve()
    assert graph.customer("tickets", "t1") is None
    graph.resolve(IdentityConfig(match_landlines=True, name_sources=(), gender_sources=()))
    assert graph.customer("tickets", "t1") == graph.customer("tmall_orders", "o1")


def test_anonymous_record_has_no_customer_and_matched_by_names_the_key(graph):
    graph.add("transactions", "anon")
    graph.add("transactions", "r1", phone="P1")
    graph.add("tickets", "t1", phone="P1")
    graph.resolve()
    assert graph.customer("transactions", "anon") is None
    rows = dict(graph.con.execute(
        "SELECT record_id, matched_by FROM identity.record_customer WHERE record_type = 'tickets'").fetchall())
    assert rows == {"t1": "phone"}


def test_ids_survive_reruns_merge_keeps_oldest_and_split_keeps_biggest(graph):
    graph.add("members", "a1", phone="PA", member_card="a1")
    graph.add("tickets", "a2", phone="PA")
    graph.add("surveys", "a3", phone="PA")
    graph.add("members", "b1", phone="PB", member_card="b1")
    graph.resolve()
    id_a, id_b = graph.customer("members", "a1"), graph.customer("members", "b1")
    assert id_a != id_b
    graph.resolve()  # unchanged input: unchanged ids
    assert (graph.customer("members", "a1"), graph.customer("members", "b1")) == (id_a, id_b)

    # run 3: a bridging record ties A and B; the older id (A, issued first) survives
    graph.add("webshop_orders", "bridge", phone="PA", email="EB")
    graph.add("leads", "b3", phone="PB", email="EB")
    graph.resolve()
    assert {graph.customer("members", "a1"), graph.customer("members", "b1")} == {id_a}
    history = graph.con.execute("SELECT old_id, new_id, reason FROM identity.customer_id_history").fetchall()
    assert history == [(id_b, id_a, "merge")]

    # run 4: the bridge is corrected away; the part with most of A's records keeps A
    graph.con.execute("DELETE FROM s.webshop_orders")
    graph.resolve()
    assert graph.customer("members", "a1") == id_a
    new_b = graph.customer("members", "b1")
    assert new_b not in (id_a, id_b, None)
    assert graph.con.execute(
        "SELECT old_id, new_id, reason FROM identity.customer_id_history WHERE run_id = 'run4'").fetchall() == [
        (id_a, new_b, "split")]


def test_new_ids_follow_delivery_order_and_records_keep_their_numbers(graph):
    # a record's number is its row key, so the first id goes to the customer delivered first,
    # whatever the types and record ids, and an untouched record keeps its number in a later run
    graph.add("webshop_orders", "z9", phone="PZ")
    graph.add("followers", "a1", unionid="U1")
    graph.resolve()
    assert graph.customer("webshop_orders", "z9") < graph.customer("followers", "a1")
    numbers = dict(graph.con.execute("SELECT record_id, rk FROM identity.records").fetchall())
    graph.add("members", "m1", phone="PZ", member_card="m1")
    graph.resolve()
    assert graph.con.execute("SELECT rk FROM identity.records WHERE record_id = 'z9'").fetchall() == [
        (numbers["z9"],)]


def test_a_registry_keyed_the_old_way_loses_its_key_and_keeps_its_ids(graph):
    graph.add("members", "a1", phone="PA", member_card="a1")
    graph.resolve()
    con, id_a = graph.con, graph.customer("members", "a1")
    con.execute("""CREATE OR REPLACE TABLE identity.customer_registry (customer_id VARCHAR PRIMARY KEY, seq BIGINT,
                   created_run VARCHAR, created_at TIMESTAMPTZ, status VARCHAR, merged_into VARCHAR)""")
    con.execute("INSERT INTO identity.customer_registry VALUES (?, 1, 'run1', now(), 'active', NULL)", [id_a])
    graph.add("members", "b1", phone="PB", member_card="b1")
    graph.resolve()
    assert con.execute("SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'customer_registry' "
                       "AND constraint_type = 'PRIMARY KEY'").fetchall() == [(0,)]
    assert graph.customer("members", "a1") == id_a
    assert con.execute("SELECT customer_id, seq FROM identity.customer_registry ORDER BY seq").fetchall() == [
        (id_a, 1), (graph.customer("members", "b1"), 2)]


def test_incremental_record_bridging_two_customers(graph):
    graph.add("followers", "f1", unionid="U1")
    graph.add("members", "m1", phone="P1", member_card="m1")
    graph.resolve()
    assert graph.customer("followers", "f1") != graph.customer("members", "m1")
    graph.add("miniprogram", "mp1", unionid="U1", phone="P1")
    stats = graph.resolve()
    assert graph.customer("followers", "f1") == graph.customer("members", "m1") == graph.customer("miniprogram",
                                                                                                   "mp1")
    assert stats.merges == 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), min_size=1, max_size=15))
def test_unrelated_records_never_change_existing_ids(extra):
    from tests.conftest import Graph

    g = Graph()
    g.add("members", "m1", phone="P1", member_card="m1")
    g.add("tickets", "t1", phone="P1")
    g.add("followers", "f1", unionid="U1")
    g.resolve()
    before = {("members", "m1"): g.customer("members", "m1"), ("followers", "f1"): g.customer("followers", "f1")}
    for i, (p, e) in enumerate(extra):  # identifiers disjoint from the existing ones
        g.add("leads", f"x{i}", phone=f"X{p}", email=f"XE{e}")
    g.resolve()
    assert {k: g.customer(*k) for k in before} == before


def _mixed_graph():
    from tests.conftest import Graph

    g = Graph()
    g.add("members", "m1", phone="P1", member_card="m1", name="N1")
    g.add("miniprogram", "mp1", phone="P1", unionid="U1")
    g.add("followers", "f1", unionid="U1")
    g.add("webshop_orders", "w1", email="E1")
    g.add("members", "m2", email="E1", member_card="m2", phone="P2")
    g.add("members", "m3", phone="P3", member_card="m3")
    g.add("tickets", "t3", phone="P3")
    g.add("tickets", "lone", phone="P4")
    for i in range(5):  # a store's phone on five cards: rejected
        g.add("members", f"s{i}", phone="STORE", member_card=f"s{i}", name=f"S{i}")
    return g


def test_identifier_number_collisions_fall_back_to_exact_numbers(monkeypatch):
    # Identifiers are numbered by a 64-bit hash. Force every value of a kind onto one
    # number: resolve must notice and give exactly what it gives without collisions.
    import identity.graph as graph_module

    def outputs(g):
        return {t: sorted(g.con.execute(f"SELECT * FROM identity.{t}").fetchall(), key=str)
                for t in ("record_customer", "rejected_identifiers", "dropped_links", "links")}

    reference = _mixed_graph()
    reference.resolve()
    monkeypatch.setattr(graph_module, "IDENTIFIER_HASH", "(hash(kind) >> 1)::BIGINT")
    colliding = _mixed_graph()
    colliding.resolve()
    assert len(reference.groups()) == 9
    expected, got = outputs(reference), outputs(colliding)
    drop_iid = {"links": lambda rows: sorted(((rk, kind, value) for rk, _, kind, value in rows), key=str)}
    for table in expected:
        strip = drop_iid.get(table, lambda rows: rows)
        assert strip(got[table]) == strip(expected[table]), table
    assert colliding.con.execute("""SELECT count(DISTINCT iid) = count(DISTINCT (kind, value))
                                    FROM identity.links""").fetchall() == [(True,)]


def test_number_identifiers_reports_a_collision(graph, monkeypatch):
    import identity.graph as graph_module

    graph.add("members", "a", phone="PA", member_card="a")
    graph.add("members", "b", phone="PB", member_card="b")
    monkeypatch.setattr(graph_module, "IDENTIFIER_HASH", "(hash(kind) >> 1)::BIGINT")
    graph.resolve()
    assert graph.customer("members", "a") != graph.customer("members", "b")
    graph.con.execute("""CREATE OR REPLACE TEMP TABLE id_identifiers AS
                         SELECT rk, kind, value, links, strength, (hash(kind) >> 1)::BIGINT AS iid
                         FROM identity.identifiers""")
    assert graph_module.number_identifiers(graph.con) is False
    assert graph_module.number_identifiers(graph.con) is True  # exact numbers now


def test_a_collision_is_remembered_so_the_next_run_is_full(graph, monkeypatch):
    # Exact row numbers replace colliding hashes; the state must say so, or the next run would
    # join new records' hashed numbers against stored row numbers and miss every old identifier.
    import identity.graph as graph_module

    graph.add("members", "a", phone="PA", member_card="a")
    graph.add("members", "b", phone="PB", member_card="b")
    monkeypatch.setattr(graph_module, "IDENTIFIER_HASH", "(hash(kind) >> 1)::BIGINT")
    graph.resolve()
    assert graph.con.execute("SELECT hashed_ids FROM identity.resolve_state").fetchall() == [(False,)]
    monkeypatch.undo()
    graph.add("tmall_orders", "t", phone="PA", buyer_nick="n")
    assert graph.resolve().extra["mode"] == "full"
    assert graph.customer("tmall_orders", "t") == graph.customer("members", "a")


def test_resolve_leaves_no_working_tables_behind(graph):
    graph.add("members", "m", member_card="card", phone="P", name="N")
    graph.add("tmall_orders", "t", buyer_nick="nick", phone="P")
    graph.resolve()
    temp = graph.con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
    assert temp == []
    assert len(graph.groups()) == 1



def test_diagnostics_count_sizes_channels_and_guards(graph):
    from identity.diagnostics import diagnostics

    graph.add("members", "m1", phone="P1", member_card="m1")  # one person on three records, two channels
    graph.add("miniprogram", "mp1", phone="P1", unionid="U1")
    graph.add("followers", "f1", unionid="U1")
    graph.add("tickets", "t1", phone="P2")  # a customer of one record
    graph.add("transactions", "anon")  # no customer, but a record all the same
    for i in range(3):  # a store phone on three cards: rejected, three customers of one record
        graph.add("members", f"card{i}", phone="STORE", member_card=f"card{i}", name=f"name{i}")
    graph.resolve()
    graph.con.execute("UPDATE identity.record_customer SET channel = CASE WHEN record_type IN "
                      "('miniprogram', 'followers') THEN 'wechat' ELSE 'store' END")
    diag = diagnostics(graph.con)
    assert diag["cluster_sizes"] == [("1", 4), ("3-5", 1)]
    assert diag["largest_clusters"][0] == (graph.customer("members", "m1"), 3, 2)
    assert [row[1:] for row in diag["largest_clusters"][1:]] == [(1, 1)] * 4
    # three of all eight records, the anonymous one included, sit on a customer seen on two channels
    assert diag["share_of_records_on_2plus_channel_customers"] == round(3 / 8, 4)
    assert [(kind, reason) for kind, reason, _, _ in diag["rejected_identifiers"]] == [
        ("phone", "shared identifier over cardinality limit")]
    top = diag["most_connected_identifiers"][:2]  # P1 and U1 link two records each; STORE links none
    assert sorted((kind, records) for kind, _, records in top) == [("phone", 2), ("unionid", 2)]
    # the run keeps each token's link count; a warehouse from before that has them counted, alike
    graph.con.execute("ALTER TABLE identity.identifier_tokens DROP COLUMN records")
    assert diagnostics(graph.con)["most_connected_identifiers"] == diag["most_connected_identifiers"]
