"""``scv``: the command line for operators, data engineers and the privacy officer.

Every command works on ``SCV_HOME`` (default: the repo's ``data/``). Runs go
through Dagster, recorded in the instance of the repo's ``dagster.yaml`` (or
``DAGSTER_HOME``), so they show in the UI exactly like scheduled runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import duckdb
import typer
from rich.console import Console
from rich.table import Table

from pipelines.warehouse import REPO_ROOT, Layout, open_published, scv_home
from privacy import keys

app = typer.Typer(help="Single customer view pipeline.", no_args_is_help=True, add_completion=False)
keys_app = typer.Typer(help="Brand-held encryption keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
console = Console() if sys.stdout.isatty() else Console(width=200)  # pipes and logs: no wrapping

HomeOption = typer.Option(None, "--home", help="SCV_HOME folder (default: $SCV_HOME or the repo's data/)")


def _layout(home: Path | None) -> Layout:
    if home is not None:
        os.environ["SCV_HOME"] = str(home)
    layout = Layout(scv_home())
    os.environ["SCV_HOME"] = str(layout.home)  # absolute: runs may change the working directory
    if os.environ.get(keys.KEY_DIR_ENV):
        os.environ[keys.KEY_DIR_ENV] = str(keys.key_dir())
    return layout


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def _instance():
    import dagster as dg

    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    os.chdir(REPO_ROOT)  # dagster.yaml keeps its storage under the repo's data/
    return dg.DagsterInstance.from_config(str(REPO_ROOT))


def _execute(job_name: str, tags: dict | None = None):
    """Run one of the Definitions' jobs in this process, logging only warnings to the console."""
    from pipelines.definitions import defs

    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    return defs.resolve_job_def(job_name).execute_in_process(
        instance=_instance(), raise_on_error=False, run_config=quiet, tags=tags)


def _phone_token(phone: str, ring: keys.Keyring) -> str:
    """Normalise a phone as ingestion does and tokenise it; refuse what is not a usable number."""
    import polars as pl

    from identity.phones import normalize_phones
    from privacy.crypto import token

    norm = normalize_phones(pl.Series([phone])).row(0, named=True)
    if norm["phone_e164"] is None:
        _fail(f"not a usable phone number ({norm['phone_status']})")
    return token(norm["phone_e164"], ring, "phone")


@app.command()
def run(home: Path | None = HomeOption) -> None:
    """Ingest new landing files and publish fresh profiles and exports (the main job)."""
    layout = _layout(home)
    if not layout.landing.exists():
        _fail(f"no landing folder at {layout.landing}")
    console.print(f"running the [bold]scv_refresh[/bold] job on {layout.landing} ...")
    result = _execute("scv_refresh")
    if not result.success:
        failed = [e.step_key for e in result.all_events if e.is_step_failure]
        for event in result.all_events:
            if event.is_step_failure:
                err = event.step_failure_data.error
                console.print(f"[red]{event.step_key} failed:[/red] {err.cause.message if err.cause else err.message}")
        _fail(f"run {result.run_id} failed at {', '.join(failed) or 'a check'}; the last published warehouse "
              "is unchanged")
    summary(home=None)


@app.command()
def summary(home: Path | None = HomeOption) -> None:
    """Print records read, customers, match rate and where the outputs are."""
    layout = _layout(home)
    con = open_published(layout)
    try:
        files, delivered, loaded, quarantined = con.execute("""
            SELECT count(*), coalesce(sum(rows_delivered), 0), coalesce(sum(rows_loaded), 0),
                   coalesce(sum(rows_quarantined), 0) FROM staging.file_ledger""").fetchall()[0]
        records, linked, customers = con.execute("""
            SELECT count(*), count(customer_id), count(DISTINCT customer_id)
            FROM identity.record_customer""").fetchall()[0]
        multi = con.execute("SELECT count(*) FROM mart.customer_profile WHERE len(channels) >= 2").fetchall()[0][0]
    finally:
        con.close()
    table = Table(show_header=False, box=None)
    table.add_row("landing files", f"{files:,}")
    table.add_row("records read", f"{delivered:,} ({loaded:,} loaded, {quarantined:,} quarantined)")
    table.add_row("distinct records", f"{records:,}")
    table.add_row("customers", f"{customers:,} ({multi:,} seen on 2+ channels)")
    table.add_row("match rate", f"{linked / records:.1%} of records tied to a customer" if records else "n/a")
    table.add_row("warehouse", str(layout.warehouse))
    table.add_row("exports", str(layout.exports))
    console.print(table)
    console.print(f"try: duckdb -readonly {layout.warehouse} -c \"SELECT * FROM mart.customers LIMIT 5\"")


@app.command()
def generate(
    people: int = typer.Option(1000, help="How many true people to simulate"),
    seed: int = typer.Option(7, help="Random seed: same seed, same files"),
    out: Path = typer.Option(..., help="Landing folder to write (channel sub-folders are created)"),
    truth: Path | None = typer.Option(None, help="Ground-truth CSV (default: beside the landing folder)"),
) -> None:
    """Write a synthetic landing folder in the real formats, plus its ground truth."""
    from pipelines.generate import generate_landing

    stats = generate_landing(people=people, seed=seed, out=out, truth=truth)
    console.print(stats)


@app.command()
def evaluate(truth: Path = typer.Option(..., exists=True, help="Ground-truth CSV"),
             home: Path | None = HomeOption) -> None:
    """Pairwise precision, recall and F1 of the published identity graph against a ground truth."""
    from identity.evaluate import evaluate as run_eval

    layout = _layout(home)
    if not layout.warehouse.exists():
        _fail(f"no warehouse at {layout.warehouse}")
    con = duckdb.connect()
    con.execute(f"ATTACH '{layout.warehouse.as_posix()}' AS wh (READ_ONLY)")
    acc = run_eval(con, truth, "wh.identity.record_customer", identity="wh.identity")
    for line in acc.lines():
        console.print(line)
    report(home=None)
    if acc.unmatched_truth:
        console.print(f"[yellow]{acc.unmatched_truth:,} truth records are not in the lineage table[/yellow]")


@app.command()
def report(home: Path | None = HomeOption) -> None:
    """Identity diagnostics: cluster sizes, largest clusters, busiest identifiers, guards, merges."""
    from identity.diagnostics import diagnostics

    layout = _layout(home)
    con = open_published(layout)
    try:
        diag = diagnostics(con)
    finally:
        con.close()
    console.print("records per customer: " + ", ".join(f"{b}: {n:,}" for b, n in diag["cluster_sizes"]))
    console.print("largest customers:    " + ", ".join(f"{c} ({r} records, {ch} channels)"
                                                       for c, r, ch in diag["largest_clusters"]))
    console.print("busiest identifiers:  " + ", ".join(f"{k} {p} ({n})"
                                                       for k, p, n in diag["most_connected_identifiers"]))
    cross = diag['share_of_records_on_2plus_channel_customers']
    console.print(f"records on customers seen on 2+ channels: {cross:.1%}")
    for kind, reason, n, records in diag["rejected_identifiers"]:
        console.print(f"rejected {kind}: {reason}: {n:,} identifiers on {records:,} records")
    console.print(f"outlying links dropped: {diag['dropped_links']:,}; last id changes: "
                  f"{diag['merges_last_change']:,} merges, {diag['splits_last_change']:,} splits")


@app.command()
def lookup(phone: str = typer.Option(..., help="Phone in any common spelling"), home: Path | None = HomeOption) -> None:
    """Find a customer by phone without decrypting anything: normalise, tokenise, look up."""
    from privacy.suppression import customers_for_phone

    layout = _layout(home)
    tok = _phone_token(phone, keys.load_keyring())
    con = open_published(layout)
    try:
        ids = customers_for_phone(con, tok)
        if not ids:
            console.print("no customer with this phone")
            raise typer.Exit(1)
        profile = con.execute(
            "SELECT customer_id, phone_masked, value_class, lifecycle_stage, channels, marketing_consent "
            "FROM mart.customers WHERE customer_id IN (SELECT unnest(?))", [ids]).fetchall()
    finally:
        con.close()
    for row in profile:
        console.print(dict(zip(["customer_id", "phone_masked", "value_class", "lifecycle_stage", "channels",
                                "marketing_consent"], row, strict=True)))


@app.command()
def explain(customer_id: str = typer.Argument(..., help="A customer_id, e.g. C000000001"),
            home: Path | None = HomeOption) -> None:
    """Show a customer's records, the identifiers that joined them and anything rejected or dropped."""
    layout = _layout(home)
    con = open_published(layout)
    try:
        rows = con.execute("""SELECT record_type, record_id, channel, matched_by, kind, value_prefix, status
                              FROM identity.customer_explain WHERE customer_id = ?
                              ORDER BY record_type, record_id, kind""", [customer_id]).fetchall()
        history = con.execute("""SELECT old_id, new_id, reason, run_id FROM identity.customer_id_history
                                 WHERE old_id = ? OR new_id = ? ORDER BY changed_at""",
                              [customer_id, customer_id]).fetchall()
    finally:
        con.close()
    if not rows:
        _fail(f"no customer {customer_id}")
    table = Table("record", "channel", "matched by", "identifier", "token prefix", "status", title=customer_id)
    for record_type, record_id, channel, matched_by, kind, prefix, status in rows:
        table.add_row(f"{record_type}:{record_id}", channel, matched_by or "", kind or "", prefix or "", status or "")
    console.print(table)
    for old, new, reason, run_id in history:
        console.print(f"{reason}: {old} -> {new} (run {run_id})")


@app.command()
def reveal(customer_id: str = typer.Argument(..., help="The customer whose personal data to decrypt"),
           reason: str = typer.Option(..., help="Why (written to the audit log)"),
           who: str | None = typer.Option(None, help="Who asks (default: the OS user)"),
           home: Path | None = HomeOption) -> None:
    """Decrypt a customer's personal data for an authorised person; every reveal is audited."""
    from privacy.audit import reveal as do_reveal

    layout = _layout(home)
    ring = keys.load_keyring()
    con = open_published(layout)
    try:
        values = do_reveal(con, ring, layout.home, customer_id, reason, who)
    except (LookupError, ValueError) as exc:
        _fail(str(exc))
    finally:
        con.close()
    for attr, value in values.items():
        console.print(f"{attr:>9}: {value}")


@app.command()
def erase(customer: str | None = typer.Option(None, "--customer", help="customer_id to erase"),
          phone: str | None = typer.Option(None, "--phone", help="phone to erase (any spelling)"),
          home: Path | None = HomeOption) -> None:
    """Erase a person from every table and export (PIPL), and keep later deliveries of them out."""
    import uuid
    from datetime import UTC, datetime

    from assets.downstream import rebuild_downstream
    from pipelines.resources import as_of_date
    from pipelines.warehouse import edit_published
    from privacy.suppression import customers_for_phone
    from privacy.suppression import erase as do_erase

    if not customer and not phone:
        _fail("give --customer or --phone")
    layout = _layout(home)
    ring = keys.load_keyring()
    phone_token = _phone_token(phone, ring) if phone else None
    now = datetime.now(UTC).replace(microsecond=0)
    with edit_published(layout, "erase") as (con, build_id):
        ids = [customer] if customer else customers_for_phone(con, phone_token)
        report = do_erase(con, ring, ids, f"erase-{uuid.uuid4().hex[:8]}", now, phone_token)
        rebuild_downstream(con, layout.home, layout.build_exports(build_id), build_id, now, as_of_date())
    console.print(f"erased customers {', '.join(report.customer_ids) or '(none linked)'}; "
                  f"records removed {report.records_removed}; {report.tokens_suppressed} identifiers suppressed; "
                  "warehouse and exports republished")


@keys_app.command("rotate")
def keys_rotate(tokens: bool = typer.Option(False, "--tokens", help="Rotate the token (HMAC) key instead: "
                                            "re-ingests every landing file with a full rebuild"),
                home: Path | None = HomeOption) -> None:
    """New data key; re-encrypt every stored value under it; retire old keys once unused."""
    from pipelines.warehouse import edit_published
    from privacy.rotation import key_usage, reencrypt

    layout = _layout(home)
    if tokens:
        _rotate_tokens(layout)
        return
    new_id = keys.add_data_key()
    ring = keys.load_keyring()
    with edit_published(layout, "rotate") as (con, _):
        moved = reencrypt(con, ring)
        usage = key_usage(con)
    retired = keys.retire_data_keys(set(usage))
    console.print(f"active data key {new_id}; re-encrypted {sum(moved.values()):,} distinct values in "
                  f"{len(moved)} columns; retired {', '.join(retired) or 'nothing'}")


def _rotate_tokens(layout: Layout) -> None:
    """Tokens are HMACs of values no longer kept in clear: a new token key means re-ingesting.

    The new key becomes active and the ``scv_rebuild`` job re-reads every landing file;
    customer ids survive (lineage is keyed by record), and people erased earlier are still
    recognised through the retired token keys, which stay in the keyring for that alone.
    """
    from pipelines.resources import REBUILD_TAG

    new_id = keys.add_token_key()
    console.print(f"active token key {new_id}; rebuilding from {layout.landing} ...")
    result = _execute("scv_rebuild", tags={REBUILD_TAG: "true"})
    if not result.success:
        _fail(f"rebuild {result.run_id} failed; the published warehouse still uses the old tokens. Run "
              "`scv keys rotate --tokens` again after fixing the cause (a further new key is harmless).")
    console.print("token rotation done: every token re-made under the new key")


@keys_app.command("init")
def keys_init() -> None:
    """Create the master key and keyring (refuses to overwrite existing keys)."""
    folder = keys.key_dir()
    if (folder / keys.KEYRING_FILE).exists():
        console.print(f"keys already exist in {folder}")
        return
    keys.init_keys(folder)
    console.print(f"created master key and keyring in {folder} (mode 0600). Back this folder up: without it "
                  "the encrypted data cannot be read and new data cannot be matched to old.")


@keys_app.command("status")
def keys_status() -> None:
    """Show where the keys come from and which key ids exist (never the keys)."""
    try:
        ring = keys.load_keyring()
    except keys.KeyProblem as exc:
        _fail(str(exc))
    source = keys.MASTER_KEY_ENV if os.environ.get(keys.MASTER_KEY_ENV) else str(ring.folder / keys.MASTER_FILE)
    console.print(f"master key: {source}")
    console.print(f"keyring:    {ring.folder / keys.KEYRING_FILE}")
    for kid, spec in ring.meta["data_keys"].items():
        console.print(f"data key {kid}: {spec['status']} (created {spec['created']})")
    console.print(f"token key {ring.token_key_id}: fingerprint {ring.fingerprint()}")


def main() -> None:  # pragma: no cover - console entry
    try:
        app()
    except keys.KeyProblem as exc:
        console.print(f"[red]key error:[/red] {exc}")
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
