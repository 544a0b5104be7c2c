"""Every command has help with an example, and settings errors are clear."""

import click
from click.testing import CliRunner

from monitor.cli import cli


def _commands(group, prefix=()):
    for name, command in group.commands.items():
        yield prefix + (name,), command
        if isinstance(command, click.Group):
            yield from _commands(command, prefix + (name,))


def test_every_command_has_help_with_an_example():
    missing = [" ".join(path) for path, command in _commands(cli) if "Example:" not in (command.help or "")]
    assert missing == []
    runner = CliRunner()
    for path, _ in _commands(cli):
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0 and "Example:" in result.output, path


def test_a_secret_in_the_settings_file_is_refused(workdir):
    (workdir / "weerbaar.toml").write_text('x_bearer_token = "abc"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["officials", "list"])
    assert result.exit_code == 2
    assert "field 'x_bearer_token' is a secret" in result.output
    assert "abc" not in result.output


def test_environment_overrides_the_settings_file(workdir, monkeypatch):
    from monitor.settings import load_settings

    monkeypatch.setenv("WEERBAAR_CLASSIFIER__BATCH_SIZE", "7")
    monkeypatch.setenv("WEERBAAR_DB_PATH", str(workdir / "other.db"))
    settings = load_settings()
    assert settings.classifier.batch_size == 7 and settings.db_path == workdir / "other.db"
    assert settings.classifier.model == "test-keywords"  # still from the file


def test_a_broken_settings_file_names_the_file(workdir):
    (workdir / "weerbaar.toml").write_text("db_path = \n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["officials", "list"])
    assert result.exit_code == 2 and "weerbaar.toml" in result.output
