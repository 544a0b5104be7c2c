"""Settings that catch mistakes: unknown keys, typed source tables, thresholds in [0, 1], secrets in the file."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.settings import PROJECT_ROOT, SettingsError, XSourceSettings, load_settings

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "weerbaar.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings(path)
    return str(caught.value)


def test_a_misspelt_source_key_fails_naming_file_line_table_and_key(tmp_path):
    path = write(tmp_path, '[sources.x]\ntype = "x"\nmonthy_read_budget = 500\n')
    assert error_of(path) == f"{path}:3: [sources.x] monthy_read_budget: unknown key"


@pytest.mark.parametrize("table", ["classifier", "digest"])
def test_unknown_keys_fail_in_every_table(tmp_path, table):
    path = write(tmp_path, f"[{table}]\nbatch_sise = 8\n")
    assert error_of(path) == f"{path}:2: [{table}] batch_sise: unknown key"


def test_an_unknown_top_level_key_or_table_fails(tmp_path):
    assert "[top level] retention_dayz: unknown key" in error_of(write(tmp_path, "retention_dayz = 30\n"))


def test_source_settings_are_typed_by_their_type(tmp_path):
    settings = load_settings(write(tmp_path, '[sources.x]\ntype = "x"\npage_size = 50\n'))
    assert isinstance(settings.sources["x"], XSourceSettings) and settings.sources["x"].page_size == 50
    # A key of another source type is not accepted: Mastodon's hashtags mean nothing to X.
    assert "[sources.x] hashtags: unknown key" in error_of(write(tmp_path, '[sources.x]\ntype = "x"\nhashtags = []\n'))
    assert "[sources.x] page_size" in error_of(write(tmp_path, '[sources.x]\ntype = "x"\npage_size = "veel"\n'))
    unknown = error_of(write(tmp_path, '[sources.y]\ntype = "myspace"\n'))
    assert "[sources.y] type: unknown source type" in unknown and "bluesky" in unknown
    assert "[sources.f] path" in error_of(write(tmp_path, '[sources.f]\ntype = "file"\n'))


@pytest.mark.parametrize("value", ["1.5", "-0.1"])
def test_thresholds_must_lie_between_zero_and_one(tmp_path, value):
    message = error_of(write(tmp_path, f"[classifier.thresholds]\nthreat = {value}\n"))
    assert message.startswith(f"{tmp_path / 'weerbaar.toml'}:2: [classifier.thresholds] threat:")


@pytest.mark.parametrize("text", [
    'x_bearer_token = "abc"\n',
    '[sources.x]\ntype = "x"\nbearer_token = "abc"\n',
    '[mail]\nsmtp_password = "abc"\n',
    '[sources.b]\ntype = "bluesky"\napp_password = "abc"\n',
])
def test_a_secret_is_refused_anywhere_in_the_file_and_never_echoed(tmp_path, text):
    message = error_of(write(tmp_path, text))
    assert "is a secret" in message and "abc" not in message


def test_the_shipped_config_gives_every_category_the_models_own_threshold():
    settings = load_settings(PROJECT_ROOT / "config" / "weerbaar.toml")
    model = json.loads((PROJECT_ROOT / "models" / "weerbaar-e5-ft" / "model.json").read_text())
    assert settings.classifier.thresholds == model["thresholds"]


def test_importing_any_collector_does_not_import_the_pipeline():
    modules = sorted(f"scrapers.{p.stem}" for p in (REPO / "scrapers").glob("*.py") if p.stem != "__init__")
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
            + "print(sorted(m for m in sys.modules if m.startswith('monitor.')))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert "monitor.pipeline" not in loaded.stdout, loaded.stdout


def _imported_distributions(folders: list[str]) -> set[str]:
    """Return the normalised names of the installed distributions that the code in FOLDERS imports."""
    import ast
    import importlib.metadata
    import re

    provided = importlib.metadata.packages_distributions()
    names: set[str] = set()
    for folder in folders:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    local = {"monitor", "scrapers", "tests"}
    third_party = {n for n in names if n not in sys.stdlib_module_names and n not in local}
    return {re.sub(r"[-_.]+", "-", dist).lower() for n in third_party for dist in provided.get(n, [n])}


def _declared(group: str | None) -> set[str]:
    import re
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    specs = project["dependencies"] if group is None else project["optional-dependencies"][group]
    return {re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0]).lower() for spec in specs}


def test_declared_dependencies_match_the_imports():
    runtime = _imported_distributions(["monitor", "scrapers", "scripts"])
    declared = _declared(None)
    # Every import is declared (training code imports the `train` extra, researchers' browsing and Parquet the
    # `research` extra, both lazily); nothing declared goes unused.
    assert runtime - declared - _declared("train") - _declared("research") == set()
    # Needed at run time through a framework, never imported by name: FastAPI's form parsing (python-multipart)
    # and Starlette's signed session cookies (itsdangerous).
    assert declared - runtime == {"python-multipart", "itsdangerous"}
    tests_only = _imported_distributions(["tests"]) - runtime
    assert tests_only - _declared("test") == set()


def test_unknown_keys_are_found_in_any_settings_table_even_one_that_does_not_forbid_them():
    from pydantic import BaseModel

    from monitor.settings import Settings, unknown_keys

    class Lenient(BaseModel):  # a table declared without extra="forbid"
        host: str = "localhost"

    class WithLenientTable(Settings):
        lenient: Lenient = Lenient()

    settings = WithLenientTable(lenient={"host": "mail.example", "prot": 25})
    assert unknown_keys(settings, {"lenient": {"host": "mail.example", "prot": 25}}) == [(("lenient",), "prot")]
    assert unknown_keys(settings, {"sources": {}, "digest": {"directory": "d"}}) == []
