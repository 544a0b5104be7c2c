"""The researchers' commands: `weerbaar export`, `annotations`, `report` and `browse` (registered on the main CLI)."""

from __future__ import annotations

import json

import click

from .cli import Context, _current_model, _fail, cli

CATEGORY_CHOICES = click.Choice(["aggression", "threat", "insult", "identity_attack"])
DAY = click.DateTime(["%Y-%m-%d"])


def _key() -> bytes:
    from .pseudonyms import PseudonymKeyError, key_from_environment

    try:
        return key_from_environment()
    except PseudonymKeyError as exc:
        _fail(str(exc))


def _filters(since, until, body_type, platform, category, reviewed_only):
    from .exports import ExportFilters

    if since and until and until < since:
        _fail(f"--to {until.date()} is before --from {since.date()}")
    return ExportFilters(since and since.date(), until and until.date(), tuple(body_type), tuple(platform),
                         tuple(category), reviewed_only)


def filter_options(command):
    """Add the export filters (--from, --to, --body-type, --platform, --category, --reviewed-only) to COMMAND."""
    for option in reversed([
        click.option("--from", "since", type=DAY, help="First local posting day (YYYY-MM-DD)."),
        click.option("--to", "until", type=DAY, help="Last local posting day, included."),
        click.option("--body-type", multiple=True, type=click.Choice(["gemeente", "provincie", "waterschap"]),
                     help="Only mentions addressing an official of this body type (repeatable)."),
        click.option("--platform", multiple=True, type=click.Choice(["x", "mastodon", "bluesky"]),
                     help="Only this platform (repeatable)."),
        click.option("--category", multiple=True, type=CATEGORY_CHOICES,
                     help="Only mentions the model or a human labelled so (repeatable)."),
        click.option("--reviewed-only", is_flag=True, help="Only mentions with a staff review or annotation."),
    ]):
        command = option(command)
    return command


@cli.command("export")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "parquet"]), default="jsonl", show_default=True)
@filter_options
@click.option("--sample", type=click.IntRange(min=1), help="Draw this many mentions instead of all.")
@click.option("--sampling", type=click.Choice(["random", "stratified", "uncertain"]), default="random",
              show_default=True, help="random; stratified (equal shares per category); uncertain (nearest the "
              "thresholds first, for annotation rounds).")
@click.option("--seed", type=int, default=0, show_default=True, help="Makes the sample repeatable.")
@click.option("--with-body", is_flag=True, help="Also export the body's name (with a role it can identify one person).")
@click.option("--with-time", is_flag=True, help="Also export the local posting time to the minute.")
# The default is exports.MIN_OFFICIALS, written out so that starting the CLI does not load the export code.
@click.option("--min-officials", type=click.IntRange(min=1), default=3, show_default=True,
              help="Generalise a role and body type (and body name) that fewer of the exported officials share, "
              "so that no pseudonym is singled out by them; 1 generalises nothing.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes that build the rows of an export of 20,000 mentions or more (helps only on idle cores).")
@click.pass_obj
def export(obj: Context, out_dir: str, fmt: str, since, until, body_type, platform, category, reviewed_only,
           sample, sampling, seed, with_body, with_time, min_officials, workers) -> None:
    """Write a pseudonymised, labelled export with a datasheet and a manifest of SHA-256 sums.

    Needs WEERBAAR_PSEUDONYM_KEY (at least 16 characters); without it nothing is written. Authors, officials and
    labellers become keyed ids, texts are masked, officials appear as role and body type only, generalised where
    fewer than --min-officials of the exported officials share them.

    Example:

    \b
        export WEERBAAR_PSEUDONYM_KEY=...
        weerbaar export var/exports/2026-11 --format parquet --from 2026-11-01 --to 2026-11-30
        weerbaar export var/exports/round-3 --reviewed-only --sample 500 --sampling stratified --seed 3
    """
    from .exports import ExportError, Sampling, export_dataset

    key = _key()
    filters = _filters(since, until, body_type, platform, category, reviewed_only)
    try:
        result = export_dataset(obj.db, out_dir, obj.settings, key, fmt, filters, Sampling(sample, sampling, seed),
                                _current_model(obj.settings), with_body, with_time, workers, min_officials)
    except ExportError as exc:
        _fail(str(exc))
    click.echo(f"Exported {result.rows} mention(s) to {result.directory}:")
    for name, digest in result.files.items():
        click.echo(f"  {name}  sha256 {digest}")
    click.echo(f"  {result.manifest.name}")


@cli.group()
def annotations() -> None:
    """Annotation rounds: hand out a batch, read the labels back, measure agreement.

    Example:

    \b
        weerbaar annotations export --sample 200 var/rounds/round-1
        weerbaar annotations import project-1-at-2026-12-01.json
        weerbaar annotations agreement
    """


@annotations.command("export")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--sample", required=True, type=click.IntRange(min=1), help="How many mentions the batch holds.")
@click.option("--sampling", type=click.Choice(["random", "stratified", "uncertain"]), default="uncertain",
              show_default=True, help="How they are drawn; uncertain puts those nearest the thresholds first.")
@click.option("--seed", type=int, default=0, show_default=True)
@filter_options
@click.pass_obj
def annotations_export(obj: Context, out_dir: str, sample, sampling, seed, since, until, body_type, platform,
                       category, reviewed_only) -> None:
    """Write a batch for annotators: tasks.json (Label Studio import), tasks.csv and label_config.xml.

    Texts are masked and items carry pseudonymous ids, as in `weerbaar export` (needs WEERBAAR_PSEUDONYM_KEY).

    Example:

    \b
        weerbaar annotations export --sample 200 var/rounds/round-1
    """
    from .annotations import AnnotationError, export_batch

    key = _key()
    filters = _filters(since, until, body_type, platform, category, reviewed_only)
    try:
        result = export_batch(obj.db, out_dir, obj.settings, key, sample, sampling, seed, filters,
                              _current_model(obj.settings))
    except AnnotationError as exc:
        _fail(exc.errors)
    click.echo(f"Wrote {result['items']} item(s) to {result['directory']} (tasks.json, tasks.csv, label_config.xml).")


@annotations.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_obj
def annotations_import(obj: Context, file: str) -> None:
    """Store the labels of a Label Studio JSON export, or of a filled-in tasks.csv; a bad file stores nothing.

    Example:

    \b
        weerbaar annotations import project-1-at-2026-12-01.json
        weerbaar annotations import var/rounds/round-1/tasks.csv
    """
    from .annotations import AnnotationError, import_annotations

    try:
        result = import_annotations(obj.db, file)
    except AnnotationError as exc:
        click.echo(f"{file}: nothing imported, {len(exc.errors)} problem(s):", err=True)
        _fail(exc.errors)
    click.echo(f"Imported {result['labels']} label(s) from {result['annotators']} annotator(s); "
               f"{result['replaced']} replaced an earlier import.")


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


@annotations.command("agreement")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--disagreements", type=click.IntRange(min=0), default=20, show_default=True,
              help="How many disagreements to list.")
@click.pass_obj
def annotations_agreement(obj: Context, as_json: bool, disagreements: int) -> None:
    """Report Cohen's kappa and Krippendorff's alpha per category: among annotators, against staff and the model.

    Example:

    \b
        weerbaar annotations agreement
        weerbaar annotations agreement --json
    """
    from dataclasses import asdict

    from .annotations import agreement_report

    report = agreement_report(obj.db, _current_model(obj.settings))
    if as_json:
        click.echo(json.dumps(report | {"categories": [asdict(c) for c in report["categories"]]}, indent=2))
        return
    click.echo(f"{report['items']} item(s) labelled by {len(report['annotators'])} annotator(s).")
    for c in report["categories"]:
        click.echo(f"\n{c.category}: Krippendorff's alpha {_figure(c.alpha)} ({c.alpha_items} item(s) with 2+ labels)")
        for row in c.pairs:
            click.echo(f"  kappa {row['first']} / {row['second']}: {_figure(row['kappa'])} ({row['items']} item(s))")
        for row in c.against_staff + c.against_model:
            click.echo(f"  kappa {row['annotator']} / {row['against']}: {_figure(row['kappa'])} "
                       f"({row['items']} item(s))")
    listed = report["disagreements"][:disagreements]
    click.echo(f"\n{len(report['disagreements'])} item(s) with disagreement" + (":" if listed else "."))
    for item in listed:
        given = "; ".join(f"{a}: {', '.join(labels) or 'none'}" for a, labels in item["labels"].items())
        click.echo(f"  {item['item']} on {', '.join(item['categories'])}: {given}")


@cli.command()
@click.option("--from", "since", required=True, type=DAY, help="First local day (YYYY-MM-DD).")
@click.option("--to", "until", required=True, type=DAY, help="Last local day, included.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The report file.")
@click.option("--format", "fmt", type=click.Choice(["html", "pdf"]), default="html", show_default=True)
@click.pass_obj
def report(obj: Context, since, until, output: str, fmt: str) -> None:
    """Write a Monitor-style report: shares of monitored officials who received aggression and threats.

    By body type, role, platform and category, with a monthly trend and the coverage per source. Cells of fewer than
    5 officials are suppressed; no names, handles or texts. A CSV of every table is written beside the report.

    Example:

    \b
        weerbaar report --from 2026-01-01 --to 2026-06-30 -o var/reports/2026-h1.html
        weerbaar report --from 2026-01-01 --to 2026-06-30 -o var/reports/2026-h1.pdf --format pdf
    """
    from .reports import build_report, write_report

    if until < since:
        _fail(f"--to {until.date()} is before --from {since.date()}")
    built = build_report(obj.db, obj.settings, since.date(), until.date(), _current_model(obj.settings))
    try:
        paths = write_report(built, output, fmt)
    except RuntimeError as exc:
        _fail(str(exc))
    click.echo(f"Report for {since.date()} to {until.date()}: {paths[0]}")
    click.echo(f"  and {len(paths) - 1} CSV table(s) beside it")


@cli.command()
@click.argument("export_dir", type=click.Path(exists=True))
@click.option("--port", type=int, default=8001, show_default=True)
@click.option("--no-serve", is_flag=True, help="Only build the browse database and print how to serve it.")
@click.pass_obj
def browse(obj: Context, export_dir: str, port: int, no_serve: bool) -> None:
    """Open an export read-only in Datasette, with table and column descriptions and canned queries.

    The export is loaded into EXPORT_DIR/browse.db and served immutable on 127.0.0.1; the live database is never
    served this way. Needs Datasette: pip install 'weerbaar[research]'.

    Example:

    \b
        weerbaar browse var/exports/2026-11
    """
    import subprocess

    from .browsing import BrowseError, build_browse_database, datasette_command

    try:
        database, metadata = build_browse_database(export_dir, obj.settings.db_path)
    except BrowseError as exc:
        _fail(str(exc))
    command = datasette_command(database, metadata, port)
    if no_serve:
        click.echo(" ".join(command))
        return
    try:
        import datasette  # noqa: F401
    except ImportError:
        _fail("browsing needs Datasette: pip install 'weerbaar[research]'")
    click.echo(f"Serving {database} read-only on http://127.0.0.1:{port}/ (Ctrl-C stops)")
    subprocess.run(command, check=False)
