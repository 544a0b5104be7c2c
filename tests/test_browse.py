"""Browsing: an export loaded into its own SQLite file, served read-only by Datasette; the live database refused."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner

from monitor.browsing import BrowseError, build_browse_database, check_export
from monitor.cli import cli


@pytest.fixture
def exported(workdir, monkeypatch):
    monkeypatch.setenv("WEERBAAR_PSEUDONYM_KEY", "a browsing test key")
    runner = CliRunner()
    assert runner.invoke(cli, ["officials", "import", "config/samples/officials.csv"]).exit_code == 0
    assert runner.invoke(cli, ["run", "--once"]).exit_code == 0
    assert runner.invoke(cli, ["export", "out", "--format", "parquet"]).exit_code == 0
    return workdir / "out"


def test_the_live_database_and_other_folders_are_refused(exported, workdir):
    runner = CliRunner()
    for path in ("var/weerbaar.db", "var"):
        result = runner.invoke(cli, ["browse", path, "--no-serve"])
        assert result.exit_code == 2 and "live database" in result.output, path
    result = runner.invoke(cli, ["browse", "config", "--no-serve"])
    assert result.exit_code == 2 and "no MANIFEST.json" in result.output
    # A copy of the live database elsewhere is no export either.
    (workdir / "copy.db").write_bytes((workdir / "var" / "weerbaar.db").read_bytes())
    with pytest.raises(BrowseError, match="not an export folder"):
        check_export(workdir / "copy.db", None)
    # A changed export is refused: its sums no longer match.
    with (exported / "mentions.parquet").open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(BrowseError, match="changed since the export"):
        check_export(exported, workdir / "var" / "weerbaar.db")


def test_datasette_serves_the_export_immutable_with_descriptions_and_queries(exported):
    from datasette.app import Datasette

    database, metadata_path = build_browse_database(exported)
    metadata = json.loads(metadata_path.read_text())
    served = Datasette(immutables=[str(database)], metadata=metadata)

    async def fetch():
        tables = await served.client.get("/browse.json")
        rows = await served.client.get("/browse/mentions.json?_shape=array&_size=5")
        canned = await served.client.get("/browse/labels_per_category.json?_shape=array")
        write = await served.client.post("/browse/-/query", data={"sql": "DELETE FROM mentions"})
        return tables, rows, canned, write

    tables, rows, canned, write = asyncio.run(fetch())
    assert tables.status_code == 200
    names = {t["name"] for t in tables.json()["tables"]}
    assert {"mentions", "targets", "labels"} <= names
    assert rows.status_code == 200 and all(r["mention"].startswith("m-") for r in rows.json())
    assert canned.status_code == 200 and canned.json()
    assert write.status_code != 200 or "error" in write.text.lower()
    assert served.databases["browse"].is_mutable is False
    command = CliRunner().invoke(cli, ["browse", str(exported), "--no-serve"]).output
    assert " -i " in command and "browse.db" in command and "127.0.0.1" in command


def test_the_serve_command_line_runs_datasette_on_the_export(exported):
    import subprocess

    from monitor.browsing import datasette_command

    database, metadata = build_browse_database(exported)
    command = datasette_command(database, metadata) + ["--get", "/browse/per_month_and_platform.json?_shape=array"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert sum(row["mentions"] for row in json.loads(result.stdout)) > 100
