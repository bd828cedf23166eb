"""Configuration: discovery, every key validated, errors that say where and
what was meant (SPEC section 4)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from slotguard.config import Config, ConfigError, discover, load
from slotguard.settings import Settings

SLOTGUARD = Path(sys.executable).with_name("slotguard")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_discovery_walks_up_and_skips_pyproject_without_the_table(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.slotguard]\nselect = ['SG1']\n")
    write(tmp_path / "pkg" / "pyproject.toml", "[project]\nname = 'x'\n")
    nested = tmp_path / "pkg" / "sub"
    nested.mkdir(parents=True)
    assert discover(nested) == (tmp_path / "pyproject.toml").resolve()


def test_slotguard_toml_wins_in_the_same_directory(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.slotguard]\nselect = ['SG1']\n")
    write(tmp_path / "slotguard.toml", "select = ['SG2']\n")
    found = discover(tmp_path)
    assert found == (tmp_path / "slotguard.toml").resolve()
    assert load(found).select == ("SG2",)


def test_every_key_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path / "pyproject.toml",
        """
[tool.slotguard]
select = ["SG1"]
extend-select = ["SG201"]
ignore = ["SG105", "SG104"]
exclude = ["migrations"]
extend-exclude = ["scripts/*.py"]
respect-gitignore = false
output-format = "concise"
cache-dir = ".cache/slotguard"
per-file-ignores = { "tests/*" = ["SG101"] }

[tool.slotguard.transactions]
external-calls = ["myapp.clients.*"]

[tool.slotguard.budget]
max-connections = 100
workers = 4
""",
    )
    config = load(path)
    assert config.select == ("SG1",)
    assert config.extend_select == ("SG201",)
    assert config.ignore == ("SG105", "SG104")
    assert config.exclude == ("migrations",)
    assert config.extend_exclude == ("scripts/*.py",)
    assert config.output_format == "concise"
    assert config.cache_dir == ".cache/slotguard"
    assert config.respect_gitignore is False
    assert config.per_file_ignores == (("tests/*", ("SG101",)),)
    assert config.external_calls == ("myapp.clients.*",)
    assert config.budget is not None and config.budget.reserved_connections == 3
    assert (config.budget.max_connections, config.budget.workers) == (100, 4)
    settings = Settings.from_config(config)
    assert "SG201" in settings.codes and "SG202" not in settings.codes
    assert "SG104" not in settings.codes and "SG103" in settings.codes
    assert "SG101" not in settings.codes_for(tmp_path / "tests" / "test_x.py")
    assert "SG101" in settings.codes_for(tmp_path / "app.py")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[tool.slotguard]\nselct = ['SG1']\n", "unknown key `selct`; did you mean `select`?"),
        (
            "[tool.slotguard]\nrespect-gitignore = 'yes'\n",
            '`respect-gitignore`: must be true or false, not the string "yes"',
        ),
        ("[tool.slotguard]\nselect = ['SG999']\n", "unknown rule selector `SG999`"),
        ("[tool.slotguard]\nselect = ['SG1O1']\n", "did you mean SG101?"),
        ("[tool.slotguard]\noutput-format = 'jsn'\n", "did you mean `json`?"),
        ("[tool.slotguard]\nselect = [1, 2]\n", "must be a list of strings"),
        ("[tool.slotguard.budget]\nworkers = 2\n", "needs `max-connections`"),
        ("[tool.slotguard.budget]\nmax-connections = 'many'\n", "must be a whole number"),
        (
            "[tool.slotguard.budget]\nmax-connections = 10\nreserved-connections = 10\n",
            "must be smaller than `max-connections`",
        ),
        (
            "[tool.slotguard.transactions]\nexternal_calls = []\n",
            "did you mean `transactions.external-calls`?",
        ),
        (
            "[[tool.slotguard.resources.acquire]]\ncal = 'a.b'\n",
            "did you mean `resources.acquire[0].call`?",
        ),
        (
            "[[tool.slotguard.resources.acquire]]\ncall = 'checkout'\n",
            "must be qualified with its module",
        ),
        (
            "[[tool.slotguard.resources.acquire]]\ncall = 'a.b'\nkind = 'sesion'\n",
            "did you mean `session`?",
        ),
        ("[tool.slotguard\n", "is not valid TOML"),
    ],
)
def test_errors_name_the_file_the_key_and_the_fix(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path / "pyproject.toml", text)
    with pytest.raises(ConfigError) as error:
        load(path)
    assert str(path) in str(error.value)
    assert expected in str(error.value)


def test_configuration_error_exits_2_through_the_cli(tmp_path: Path) -> None:
    import subprocess

    write(tmp_path / "pyproject.toml", "[tool.slotguard]\nignor = ['SG1']\n")
    write(tmp_path / "app.py", "import asyncpg\n")
    result = subprocess.run(
        [str(SLOTGUARD), "check", "."], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "unknown key `ignor`; did you mean `ignore`?" in result.stderr
    assert "Traceback" not in result.stderr


def test_resources_extend_the_model(tmp_path: Path) -> None:
    path = write(
        tmp_path / "pyproject.toml",
        """
[tool.slotguard.resources]
release-functions = ["myapp.db.checkin"]
owners = ["myapp.uow.UnitOfWork"]

[[tool.slotguard.resources.acquire]]
call = "myapp.db.checkout"
kind = "session"

[[tool.slotguard.resources.context-managers]]
call = "myapp.db.session_scope"
kind = "session"
""",
    )
    model = Settings.from_config(load(path)).model
    checkout = model.constructor("myapp.db.checkout")
    scope = model.constructor("myapp.db.session_scope")
    assert checkout is not None and scope is not None
    assert scope.context_manager_only and not checkout.context_manager_only
    assert model.releases_argument("myapp.db.checkin")
    assert model.is_owner_class("myapp.uow.UnitOfWork")
    assert {"checkout", "session_scope", "checkin", "UnitOfWork"} <= model.name_triggers()
    assert model.leads_somewhere("myapp.db") and not model.leads_somewhere("myapp.web")


def test_no_configuration_means_defaults() -> None:
    settings = Settings.from_config(Config())
    assert "SG101" in settings.codes and "SG000" in settings.codes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'select = "SG1"',
            '`select`: must be a list of strings, not the string "SG1" (write ["SG1"])',
        ),
        ('ignore = "SG105, SG104"', 'not the string "SG105, SG104"'),
        ("select = [1, 2]", "not the list [1, 2]"),
        ('extend-select = ["SG1", true]', 'not the list ["SG1", true]'),
        ("exclude = {build = 1}", "not the table {build = 1}"),
        ("respect-gitignore = 1", "must be true or false, not the number 1"),
        ("output-format = 5", "must be a string, not the number 5"),
        (
            'per-file-ignores = { "tests/*" = 3 }',
            "`per-file-ignores.tests/*`: must be a list of strings, not the number 3",
        ),
        (
            "resources = { acquire = 3 }",
            "`resources.acquire`: must be an array of tables, not the number 3",
        ),
        (
            "resources = { acquire = [3] }",
            "`resources.acquire[0]`: must be a table, not the number 3",
        ),
        ("budget = 100", "`budget`: must be a table, not the number 100"),
        ('budget = { max-connections = "10" }', 'must be a whole number, not the string "10"'),
        ("budget = { max-connections = 10, workers = 0 }", "must be at least 1, not 0"),
        (
            "budget = { max-connections = 10, reserved-connections = 12 }",
            "must be smaller than `max-connections` (10), not 12",
        ),
    ],
)
def test_type_errors_show_the_offending_value(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path / "slotguard.toml", text + "\n")
    with pytest.raises(ConfigError) as error:
        load(path)
    assert expected in str(error.value)


def test_a_configuration_file_given_by_name_is_named_in_its_errors(tmp_path: Path) -> None:
    import subprocess

    write(tmp_path / "app.py", "x = 1\n")
    write(tmp_path / "other.toml", 'select = "SG1"\n')
    result = subprocess.run(
        [str(SLOTGUARD), "check", "--config", "other.toml", "app.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("slotguard: error: other.toml: `select`: must be a list")
    assert "slotguard.toml" not in result.stderr
    write(tmp_path / "other.toml", '[tool.slotguard]\nselect = "SG1"\n')
    result = subprocess.run(
        [str(SLOTGUARD), "check", "--config", "other.toml", "app.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "other.toml: [tool.slotguard] `select`: must be a list" in result.stderr
