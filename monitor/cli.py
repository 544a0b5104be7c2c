"""The `weerbaar` command line: parses options, calls the library, prints results."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from pathlib import Path

import click

from . import __version__
from .db import open_db
from .settings import Settings, SettingsError, load_settings

EXIT_BAD_INPUT = 2


def _fail(messages: list[str] | str) -> None:
    """Print error messages to stderr and exit with the bad-input code."""
    for line in [messages] if isinstance(messages, str) else messages:
        click.echo(f"error: {line}", err=True)
    sys.exit(EXIT_BAD_INPUT)


class Context:
    """Settings and the database, opened on first use."""

    def __init__(self, config: str | None):
        self.config = config
        self._settings: Settings | None = None
        self._db = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self.config)
            except SettingsError as exc:
                _fail(str(exc))
        return self._settings

    @property
    def db(self):
        if self._db is None:
            self._db = open_db(self.settings.db_path, self.settings.busy_timeout_seconds)
        return self._db


@click.group()
@click.version_option(__version__, prog_name="weerbaar")
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    envvar="WEERBAAR_CONFIG",
    help="Settings file (TOML). Default: $WEERBAAR_CONFIG, else config/weerbaar.toml.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log progress and warnings.")
@click.pass_context
def cli(ctx: click.Context, config: str | None, verbose: bool) -> None:
    """Watch public social media for aggression against officials who opted in.

    Example:

    \b
        weerbaar officials import config/samples/officials.csv
        weerbaar run --once
        weerbaar digest
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = Context(config)


# -- registry -------------------------------------------------------------------------------------------------------


@cli.group()
def officials() -> None:
    """Register officials who opted in, list them, and erase their data when they withdraw.

    Example:

    \b
        weerbaar officials import officials.csv
    """


@officials.command("import")
@click.argument("csv_file", type=click.Path(dir_okay=False))
@click.pass_obj
def officials_import(obj: Context, csv_file: str) -> None:
    """Import officials from a CSV; every row is checked first and a bad file imports nothing.

    Columns: name, role, body_type, body_name, x_handle, mastodon_handle, bluesky_handle, email, consent_date,
    consent_scope, consent_recorded_by, and optionally contacts (support staff's addresses, separated by ';').

    Example:

    \b
        weerbaar officials import config/samples/officials.csv
    """
    from .officials import RegistryError, import_officials

    try:
        result = import_officials(obj.db, csv_file)
    except RegistryError as exc:
        click.echo(f"{csv_file}: nothing imported, {len(exc.errors)} problem(s):", err=True)
        _fail(exc.errors)
    click.echo(f"Imported {result['added']} official(s); {result['skipped']} already registered.")


@officials.command("add")
@click.option("--name", required=True)
@click.option("--role", required=True, help="burgemeester, wethouder, raadslid, gedeputeerde, statenlid, dijkgraaf, ...")
@click.option("--body-type", required=True, type=click.Choice(["gemeente", "provincie", "waterschap"]))
@click.option("--body-name", required=True, help='For example "Gemeente Zwolle".')
@click.option("--x", "x_handle", help="X handle, e.g. @AnneVisser.")
@click.option("--mastodon", "mastodon_handle", help="Mastodon handle, e.g. @anne@mastodon.nl.")
@click.option("--bluesky", "bluesky_handle", help="Bluesky handle, e.g. anne.bsky.social.")
@click.option("--email")
@click.option("--consent-date", required=True, help="Date consent was given (YYYY-MM-DD).")
@click.option("--consent-scope", required=True, help="Platforms consented to, e.g. x,mastodon,bluesky.")
@click.option("--recorded-by", required=True, help="Who recorded the consent.")
@click.pass_obj
def officials_add(obj: Context, **values: str | None) -> None:
    """Register one official with a recorded consent.

    Example:

    \b
        weerbaar officials add --name "Anne Visser" --role wethouder --body-type gemeente \\
            --body-name "Gemeente Zwolle" --x @AnneVisser --consent-date 2026-10-01 \\
            --consent-scope x --recorded-by "griffie: J. de Wit"
    """
    from .officials import RegistryError, register_officials, validate_official

    fields = {k: v or "" for k, v in values.items()}
    fields["consent_recorded_by"] = fields.pop("recorded_by")
    official, errors = validate_official(fields, "official")
    if official is None:
        _fail(errors)
    try:
        result = register_officials(obj.db, [official])
    except RegistryError as exc:
        _fail(exc.errors)
    click.echo("Registered." if result["added"] else "Already registered.")


@officials.command("list")
@click.option("--all", "include_withdrawn", is_flag=True, help="Include officials who withdrew.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def officials_list(obj: Context, include_withdrawn: bool, as_json: bool) -> None:
    """List registered officials, their handles and consent.

    Example:

    \b
        weerbaar officials list
    """
    from .officials import list_officials

    rows = list_officials(obj.db, include_withdrawn)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        click.echo(
            f"{row['id']:>4}  {row['name'] or '[erased]':<28} {row['role']:<13} {row['body_name']:<28} "
            f"{row['handles'] or '-'}  consent {row['consent_date']} [{row['consent_scope']}]"
            + (f" withdrawn {row['withdrawn_at']}" if row["withdrawn_at"] else "")
        )


@officials.command("withdraw")
@click.argument("official_id", type=int)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def officials_withdraw(obj: Context, official_id: int, yes: bool) -> None:
    """Withdraw an official's consent and erase their mentions, scores, reviews and handles.

    Example:

    \b
        weerbaar officials withdraw 7 --yes
    """
    from .officials import RegistryError, withdraw_official

    if not yes:
        click.confirm(f"Erase all data of official {official_id}? This cannot be undone", abort=True)
    try:
        counts = withdraw_official(obj.db, official_id, settings=obj.settings)
    except RegistryError as exc:
        _fail(exc.errors)
    click.echo(
        f"Consent withdrawn. Erased {counts['mentions']} mention(s), {counts['scores']} score(s), "
        f"{counts['reviews']} review(s) and {counts['accounts']} account(s); "
        f"{counts['quarantine']} quarantined record(s), {counts['cursors'] + counts['runs']} cursor and run "
        f"record(s) cleaned; {counts['digests_rewritten']} digest(s) rewritten without them."
    )


@officials.command("authorise")
@click.argument("official_id", type=int)
@click.option("--platform", required=True, type=click.Choice(["x", "mastodon", "bluesky"]))
@click.option("--revoke", is_flag=True, help="Take the authorisation back.")
@click.pass_obj
def officials_authorise(obj: Context, official_id: int, platform: str, revoke: bool) -> None:
    """Record that an official gave access to their own account, so its mention notifications are read.

    Without it a collector searches for the handle instead (see "Platforms and credentials" in the README).

    Example:

    \b
        weerbaar officials authorise 3 --platform mastodon
    """
    from .officials import RegistryError, authorise_account

    try:
        handle = authorise_account(obj.db, official_id, platform, authorised=not revoke)
    except RegistryError as exc:
        _fail(exc.errors)
    click.echo(f"{platform} account {handle}: {'no longer ' if revoke else ''}authorised.")


# -- collecting and scoring -----------------------------------------------------------------------------------------


@cli.command()
@click.option("--once", is_flag=True, required=True, help="Run every enabled source once and exit (for cron).")
@click.option("--source", "only", multiple=True, help="Run only this source (repeatable).")
@click.pass_obj
def run(obj: Context, once: bool, only: tuple[str, ...]) -> None:
    """Collect new mentions, score them and store them; print a summary per source.

    Example:

    \b
        weerbaar run --once
    """
    from .classifier import load_classifier
    from .pipeline import run_once

    try:
        classifier = load_classifier(obj.settings)
        runs = run_once(obj.db, obj.settings, classifier, list(only) or None)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    failed = False
    for r in runs:
        flagged = ", ".join(f"{k} {v}" for k, v in sorted(r.flagged.items())) or "none"
        click.echo(
            f"{r.source}: {r.status}; fetched {r.fetched}, new {r.new}, duplicates {r.duplicates}, "
            f"quarantined {r.quarantined}, not about a registered official {r.unmatched}; flagged: {flagged}"
            + (f"; threat alerts queued {r.alerts_queued}, sent {r.alerts_sent}" if r.alerts_queued else "")
        )
        if r.error:
            click.echo(f"{r.source}: {r.error}", err=True)
            failed = failed or r.status == "error"
    if not runs:
        click.echo("No enabled sources.")
    _report_queued_mail(obj)
    if failed:
        sys.exit(1)


def _report_queued_mail(obj: Context) -> None:
    """Tell on stderr how many mails wait in the outbox, so a down mail server is never silent."""
    if not obj.settings.mail.configured:
        return
    waiting = obj.db.execute("SELECT count(*) FROM outbox WHERE status IN ('pending', 'failed')").fetchone()[0]
    if waiting:
        click.echo(f"warning: {waiting} mail(s) not delivered yet; see `weerbaar alerts list`", err=True)


@cli.command()
@click.argument("input_file", type=click.Path(dir_okay=False, exists=True))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Where to write the scores.")
@click.pass_obj
def score(obj: Context, input_file: str, output: str) -> None:
    """Score a JSONL file of {"id", "text"} lines; writes one result line per input, in order.

    Each output line: {"id", "scores": {category: probability}, "labels": [...], "flagged": bool, "model": "name@version"}.

    Example:

    \b
        weerbaar score posts.jsonl -o scores.jsonl
    """
    from tqdm import tqdm

    from .classifier import load_classifier
    from .scoring import ScoreInputError, read_score_input, score_file

    try:
        total = len(read_score_input(input_file))
    except ScoreInputError as exc:
        click.echo(f"{input_file}: nothing scored, {len(exc.errors)} problem(s):", err=True)
        _fail(exc.errors)
    classifier = load_classifier(obj.settings)
    with tqdm(total=total, unit="text", disable=not sys.stderr.isatty()) as bar:
        count = score_file(classifier, input_file, output, obj.settings.classifier.thresholds, progress=bar.update)
    click.echo(f"Scored {count} text(s) into {output}.", err=True)


@cli.command()
@click.option(
    "--since", required=True, type=click.DateTime(["%Y-%m-%d"]),
    help="First local day (YYYY-MM-DD) of the posts to rescore, by when they were posted.",
)
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Last local day, included. Default: no end.")
@click.option("--force", is_flag=True, help="Also rescore what this model version scored already; replaces its rows.")
@click.option(
    "--batch-size", type=click.IntRange(min=1),
    help="Mentions scored and committed together. Default: classifier.batch_size.",
)
@click.pass_obj
def rescore(obj: Context, since: dt.datetime, until: dt.datetime | None, force: bool, batch_size: int | None) -> None:
    """Score stored mentions again with the configured model; the scores of other model versions stay.

    Mentions are chosen by when they were posted, in local days (like the digest). Mentions this model version
    scored already are skipped unless --force. Every batch is committed, so an interrupted run can be run again.
    Digests then use the configured model's score of each mention.

    Example:

    \b
        weerbaar rescore --since 2026-11-01
        weerbaar --config config/weerbaar.toml rescore --since 2026-11-01 --until 2026-11-30 --force
    """
    from zoneinfo import ZoneInfo

    from tqdm import tqdm

    from .classifier import load_classifier
    from .rescoring import rescore as rescore_mentions

    settings = obj.settings
    first, last = since.date(), until.date() if until else None
    if last is not None and last < first:
        _fail(f"--until {last} is before --since {first}")
    window = f"posted {first} to {last}" if last else f"posted on or after {first}"
    if first > dt.datetime.now(ZoneInfo(settings.timezone)).date():
        click.echo(f"Nothing to rescore: --since {first} is in the future.")
        return
    try:
        classifier = load_classifier(settings)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    with tqdm(unit="mention", disable=not sys.stderr.isatty()) as bar:
        result = rescore_mentions(
            obj.db, settings, classifier, first, last, force=force, batch_size=batch_size, progress=bar.update
        )
    if not result.considered:
        click.echo(f"No stored mentions {window}; nothing rescored.")
        return
    click.echo(
        f"Model {result.model} version {result.model_version}: considered {result.considered} mention(s) {window}; "
        f"rescored {result.rescored}, skipped {result.skipped} (already scored by this version), "
        f"newly flagged {result.newly_flagged}, no longer flagged {result.no_longer_flagged}."
    )
    if result.gone:
        click.echo(f"{result.gone} mention(s) were erased while the run went on; they were not rescored.")


@cli.command()
@click.pass_obj
def purge(obj: Context) -> None:
    """Delete mentions (with their scores and reviews) older than retention_days, and old quarantined records.

    Example:

    \b
        WEERBAAR_RETENTION_DAYS=180 weerbaar purge
    """
    from .retention import purge_expired

    counts = purge_expired(obj.db, obj.settings)
    click.echo(
        f"Deleted {counts['mentions']} mention(s), {counts['quarantine']} quarantined record(s) and "
        f"{counts['digests']} digest(s) from before {counts['cutoff']}."
    )


@cli.command("import")
@click.argument("export_file", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--format", "export_format", type=click.Choice(["auto", "generic", "4cat", "zeeschuimer"]), default="auto",
    show_default=True, help="The export's format; auto judges it by its columns or first line.",
)
@click.option(
    "--platform", type=click.Choice(["x", "mastodon", "bluesky"]),
    help="Platform of a 4CAT CSV whose links do not show it.",
)
@click.pass_obj
def import_export(obj: Context, export_file: str, export_format: str, platform: str | None) -> None:
    """Score and store a research-tool export (4CAT, Zeeschuimer) once, like a source; bad lines are quarantined.

    Only posts about registered officials who consented are kept. Importing the same file again adds nothing.

    Example:

    \b
        weerbaar import zeeschuimer-export-twitter.ndjson
        weerbaar import 4cat-dataset.csv --format 4cat --platform x
    """
    from scrapers.research_tools import ExportFormatError, open_export

    from .classifier import load_classifier
    from .pipeline import run_source

    try:
        source = open_export(export_file, export_format, platform)
    except (ExportFormatError, FileNotFoundError) as exc:
        _fail(str(exc))
    classifier = load_classifier(obj.settings)
    result = run_source(obj.db, source, classifier, obj.settings)
    flagged = ", ".join(f"{k} {v}" for k, v in sorted(result.flagged.items())) or "none"
    click.echo(
        f"{export_file} ({source.export_format}): {result.status}; read {result.fetched + result.quarantined} "
        f"record(s): new {result.new}, duplicates {result.duplicates}, quarantined {result.quarantined}, "
        f"not about a registered official {result.unmatched}; flagged: {flagged}"
    )
    if result.quarantined:
        click.echo("Quarantined lines are listed in the quarantine table with their file and line.", err=True)
    if result.error:
        click.echo(f"error: {result.error}", err=True)
        sys.exit(1)


# -- the service ----------------------------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--misfire-grace-seconds", type=click.IntRange(min=1), default=300, show_default=True,
    help="How late a missed run may still start (after sleep or a busy spell); later ones are skipped.",
)
@click.pass_obj
def serve(obj: Context, misfire_grace_seconds: int) -> None:
    """Collect from every enabled source on its interval and write the digest daily at digest.send_at.

    Runs until SIGTERM or Ctrl-C; running collectors then commit their current batch and the command exits 0.

    Example:

    \b
        weerbaar -v serve
    """
    from .classifier import load_classifier
    from .scheduler import serve as serve_forever

    settings = obj.settings
    try:
        classifier = load_classifier(settings)
        serve_forever(settings, classifier, misfire_grace_seconds=misfire_grace_seconds)
    except ValueError as exc:
        _fail(str(exc))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def status(obj: Context, as_json: bool) -> None:
    """Show per enabled source its last run, when it last brought posts, and whether it has gone silent.

    Example:

    \b
        weerbaar status
        weerbaar status --json
    """
    from .watchdog import source_health

    from .pipeline import mark_interrupted_runs

    mark_interrupted_runs(obj.db)
    report = source_health(obj.db, obj.settings)
    if as_json:
        click.echo(json.dumps([health.as_dict() for health in report], ensure_ascii=False, indent=2))
        return
    if not report:
        click.echo("No enabled sources.")
        return
    click.echo(f"{'source':<20} {'last status':<12} {'last run':<21} {'last posts':<21} silent")
    for health in report:
        click.echo(
            f"{health.source:<20} {health.last_status or 'never':<12} {(health.last_run_at or '-')[:19]:<21} "
            f"{(health.last_posts_at or '-')[:19]:<21} {'YES' if health.silent else 'no'}: {health.reason}"
        )


# -- digests --------------------------------------------------------------------------------------------------------


def _current_model(settings: Settings) -> tuple[str, str] | None:
    """Return the configured classifier's (name, version), or None with a warning when it cannot be loaded."""
    from .classifier import load_classifier

    try:
        classifier = load_classifier(settings)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        # A digest reads stored scores only; a missing model must not stop it, but the choice of score is said.
        click.echo(f"warning: {exc}; each mention counts with its newest score", err=True)
        return None
    return classifier.name, classifier.version


@cli.command()
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), help="One local posting day (YYYY-MM-DD) instead.")
@click.option("--latest", is_flag=True, help="The posting day of the newest stored mention instead.")
@click.option("--send", is_flag=True, help="Also mail it: the whole to [digest] recipients, each part to contacts.")
@click.pass_obj
def digest(obj: Context, day: dt.datetime | None, latest: bool, send: bool) -> None:
    """Write the digest for staff as HTML and plain text: what was collected since the previous digest.

    A post collected late (an import, a backlog, a collector that was down) is in the first digest after it was
    collected; the digest says which posting days it spans. --date gives one posting day instead.

    Example:

    \b
        weerbaar digest --send
        weerbaar digest --date 2026-11-28
    """
    from .digest_mail import make_and_send_digest
    from .digests import latest_day, write_digest
    from .mail import MailError, check_host

    settings = obj.settings
    if send:
        try:
            check_host(settings.mail)
        except MailError as exc:
            _fail(str(exc))
    model = _current_model(settings)
    if latest and day is None:
        latest_posting_day = latest_day(obj.db, settings.timezone)
        if latest_posting_day is None:
            _fail("no mentions stored yet; run `weerbaar run --once` first")
        day = dt.datetime.combine(latest_posting_day, dt.time())
    delivery = None
    if day is not None:
        chosen = day.date()
        if send:
            html_path, text_path, result, delivery = make_and_send_digest(obj.db, settings, model, day=chosen)
        else:
            html_path, text_path, result = write_digest(obj.db, settings, chosen, model)
        click.echo(f"Digest for {chosen}: {result.threats} threat(s), {result.flagged} flagged mention(s).")
    else:
        html_path, text_path, result, delivery = make_and_send_digest(obj.db, settings, model, send=send)
        click.echo(
            f"Digest of what was collected {result.window_local} (posted {result.posting_days_text}): "
            f"{result.threats} threat(s), {result.flagged} flagged mention(s)."
        )
    click.echo(f"  {html_path}\n  {text_path}")
    if delivery is not None:
        click.echo(f"Mail: sent {delivery.sent}, still queued {delivery.deferred}, refused {delivery.failed}.")
        if delivery.deferred or delivery.failed:
            click.echo("  see `weerbaar alerts list`; `weerbaar alerts retry` sends what is queued", err=True)


@cli.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Run the whole job on the bundled sample: import officials, collect, score, store, write the digest.

    Example:

    \b
        weerbaar demo
    """
    from .settings import PROJECT_ROOT

    sample = Path("config/samples/officials.csv")
    if not sample.exists():
        sample = PROJECT_ROOT / sample
    ctx.invoke(officials_import, csv_file=str(sample))
    try:
        ctx.invoke(run, once=True, only=())
    except SystemExit as exc:
        if exc.code:
            raise
    ctx.invoke(digest, day=None, latest=True, send=False)


def main() -> None:
    """Run the CLI."""
    cli()


# -- mail: threat and spike alerts, officials' contacts --------------------------------------------------------------


@officials.command("edit")
@click.argument("official_id", type=int)
@click.option("--name")
@click.option("--role")
@click.option("--body-type", type=click.Choice(["gemeente", "provincie", "waterschap"]))
@click.option("--body-name")
@click.option("--x", "x_handle", help="X handle; an empty value removes it.")
@click.option("--mastodon", "mastodon_handle", help="Mastodon handle; an empty value removes it.")
@click.option("--bluesky", "bluesky_handle", help="Bluesky handle; an empty value removes it.")
@click.option("--email", help="The official's own address (mailed only with [alerts] notify_official).")
@click.option("--contacts", help="Support contacts who get this official's alerts and digest, separated by ';'.")
@click.pass_obj
def officials_edit(obj: Context, official_id: int, **values: str | None) -> None:
    """Change an official's handles, contacts or other fields, with the same checks as an import.

    Handles must stay within the recorded consent. Only the options given change; an empty value clears a field.

    Example:

    \b
        weerbaar officials edit 3 --contacts "bode@zwolle.nl;woordvoering@zwolle.nl"
        weerbaar officials edit 3 --x @AnneVisserNieuw --mastodon ""
    """
    from .officials import RegistryError, edit_official

    changes = {k: v for k, v in values.items() if v is not None}
    if not changes:
        _fail("nothing to change; give at least one option (see --help)")
    try:
        changed = edit_official(obj.db, official_id, changes)
    except RegistryError as exc:
        _fail(exc.errors)
    click.echo(f"Official {official_id}: changed {', '.join(changed)}." if changed else "Nothing changed.")


@cli.group()
def alerts() -> None:
    """Show and resend the alert and digest mails waiting in the outbox.

    Example:

    \b
        weerbaar alerts list
        weerbaar alerts retry
    """


@alerts.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also show what was sent.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def alerts_list(obj: Context, show_all: bool, as_json: bool) -> None:
    """List queued mail: pending (the server was down or said "try later") and failed (the server refused it).

    Example:

    \b
        weerbaar alerts list
    """
    from .mail import outbox_rows, plain

    statuses = ("pending", "failed", "sent") if show_all else ("pending", "failed")
    rows = outbox_rows(obj.db, statuses)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("Nothing queued: every alert and digest was handed to the mail server.")
        return
    for row in rows:
        click.echo(
            f"{row['id']:>5}  {row['status']:<8} {row['kind']:<7} {plain(row['recipient']):<32} "
            f"queued {row['queued_at'][:19]}  tries {row['attempts']}  {plain(row['subject'])}"
        )
        if row["last_error"]:
            click.echo(f"       last error: {plain(row['last_error'])}")


@alerts.command("retry")
@click.option("--failed", "include_failed", is_flag=True, help="Also resend what the server refused (5xx).")
@click.option("--id", "ids", type=int, multiple=True, help="Resend only this outbox row (repeatable).")
@click.pass_obj
def alerts_retry(obj: Context, include_failed: bool, ids: tuple[int, ...]) -> None:
    """Send what is queued now: threat alerts, spike alerts and digests. Nothing already sent is sent again.

    Example:

    \b
        weerbaar alerts retry
        weerbaar alerts retry --failed
    """
    from .mail import MailError, check_host, send_pending

    try:
        check_host(obj.settings.mail)
    except MailError as exc:
        _fail(str(exc))
    result = send_pending(obj.db, obj.settings.mail, include_failed=include_failed, ids=list(ids) or None)
    click.echo(f"Mail: sent {result.sent}, still queued {result.deferred}, refused {result.failed}.")
    for line in dict.fromkeys(result.errors):
        click.echo(f"  {line}", err=True)
    if result.deferred or result.failed:
        sys.exit(1)


# -- sources: cursors rewound on purpose ------------------------------------------------------------------------------


@cli.group()
def sources() -> None:
    """Look after the configured sources: rewind a cursor on purpose.

    Example:

    \b
        weerbaar sources reset sample --yes
    """


@sources.command("reset")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def sources_reset(obj: Context, name: str, yes: bool) -> None:
    """Rewind source NAME's cursor, so its next run reads everything again (stored posts are skipped).

    Also clears a rate-limit wait. Use it after fixing a source's file or settings.

    Example:

    \b
        weerbaar sources reset sample --yes
    """
    from .pipeline import get_cursor, reset_cursor

    known = set(obj.settings.sources) | {row[0] for row in obj.db.execute("SELECT source FROM cursors")}
    if name not in known:
        _fail([f"unknown source {name!r} (configured: {', '.join(sorted(obj.settings.sources)) or 'none'})"])
    if get_cursor(obj.db, name) is None and not obj.db.execute(
            "SELECT 1 FROM cursors WHERE source = ?", [name]).fetchone():
        click.echo(f"Source {name} has no cursor yet; nothing to reset.")
        return
    if not yes:
        click.confirm(f"Rewind source {name} to read everything again?", abort=True)
    reset_cursor(obj.db, name)
    click.echo(f"Source {name} rewound: its next run reads from the start; posts already stored are skipped.")


# The review desk's commands (users, web, evidence) live in their own module.
from . import cli_web  # noqa: E402,F401
# Researchers' commands (export, annotations, report, browse) register themselves on `cli`.
from . import cli_research  # noqa: E402,F401
