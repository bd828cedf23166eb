"""The versions a project may run, read from what it declares, and the
context-manager forms the fixes write for them (``slotguard.fixes.versions``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slotguard.config import Config
from slotguard.fixer import fix_source
from slotguard.fixes.versions import declared, every_version_has, parse_version
from slotguard.settings import Settings

SESSION = """\
from sqlalchemy.orm import sessionmaker

SessionLocal = sessionmaker()


def rename(user_id, name):
    db = SessionLocal()
    db.query(User).filter_by(id=user_id).update({"name": name})
    db.commit()
"""


def project(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / ".git").mkdir()
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "app").mkdir(exist_ok=True)
    return tmp_path / "app" / "module.py"


@pytest.mark.parametrize(
    ("files", "lowest"),
    [
        ({"requirements.txt": "SQLAlchemy==1.3.24  # pinned\n"}, "1.3.24"),
        ({"requirements.txt": "-r base.txt\n", "base.txt": "sqlalchemy>=1.4,<2\n"}, "1.4"),
        ({"requirements/prod.txt": "SQLAlchemy[asyncio]~=2.0.30\n"}, "2.0.30"),
        ({"pyproject.toml": '[project]\ndependencies = ["sqlalchemy>=2.0.6"]\n'}, "2.0.6"),
        (
            {"pyproject.toml": '[tool.poetry.dependencies]\npython = "^3.11"\nSQLAlchemy = "^2"\n'},
            "2",
        ),
        ({"pyproject.toml": '[project]\ndependencies = ["SQLAlchemy==2.*"]\n'}, "2.0"),
        ({"setup.cfg": "[options]\ninstall_requires =\n    sqlalchemy >= 1.4.0\n"}, "1.4.0"),
        (
            {"uv.lock": '[[package]]\nname = "sqlalchemy"\nversion = "2.0.50"\n'},
            "2.0.50",
        ),
        ({"pyproject.toml": '[project]\ndependencies = ["sqlmodel>=0.0.14"]\n'}, "1.4"),
        # Two environments: the code must work in both.
        (
            {
                "requirements.txt": "sqlalchemy==2.0.1\n",
                "requirements-old.txt": "sqlalchemy==1.3.0\n",
            },
            "1.3.0",
        ),
    ],
)
def test_the_lowest_declared_version(tmp_path: Path, files: dict[str, str], lowest: str) -> None:
    assert declared(project(tmp_path, files), "SQLAlchemy").lowest == parse_version(lowest)


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"requirements.txt": "sqlalchemy\n"},
        {"requirements.txt": "sqlalchemy<3\n"},
        {
            "pyproject.toml": '[project]\ndependencies = ["sqlalchemy @ https://example.com/sa.whl"]\n'
        },
    ],
)
def test_without_a_lower_bound_anything_supported_may_run(
    tmp_path: Path, files: dict[str, str]
) -> None:
    path = project(tmp_path, files)
    assert declared(path, "sqlalchemy").lowest is None
    assert not every_version_has(path, "sqlalchemy>=1.4")


def test_the_nearest_declaration_decides(tmp_path: Path) -> None:
    path = project(
        tmp_path,
        {"requirements.txt": "sqlalchemy==1.3.24\n", "app/requirements.txt": "sqlalchemy>=2.0\n"},
    )
    assert every_version_has(path, "sqlalchemy>=1.4")
    assert not every_version_has(path, "sqlalchemy>=2.0.47")
    assert parse_version("2.1.0b2") < parse_version("2.1.0") < parse_version("2.1.1")  # type: ignore[operator]


@pytest.mark.parametrize(
    ("files", "header"),
    [
        ({"requirements.txt": "sqlalchemy==2.0.36\n"}, "    with SessionLocal() as db:\n"),
        (
            {"requirements.txt": "sqlalchemy==1.3.24\n"},
            "    with contextlib.closing(SessionLocal()) as db:\n",
        ),
        ({}, "    with contextlib.closing(SessionLocal()) as db:\n"),
    ],
)
def test_a_session_is_entered_as_the_declared_versions_allow(
    tmp_path: Path, files: dict[str, str], header: str
) -> None:
    path = project(tmp_path, files)
    path.write_text(SESSION)
    settings = Settings.from_config(Config(), use_cache=False)
    result = fix_source(path.read_bytes(), path, settings, "module.py", unsafe=True)
    assert result.text is not None and header in result.text


@pytest.mark.parametrize(
    ("requirement", "entered"),
    [
        ("sqlalchemy==2.0.47", "with engine.raw_connection() as conn:"),
        ("sqlalchemy==2.0.46", "with contextlib.closing(engine.raw_connection()) as conn:"),
    ],
)
def test_a_raw_connection_is_entered_as_the_declared_versions_allow(
    tmp_path: Path, requirement: str, entered: str
) -> None:
    path = project(tmp_path, {"requirements.txt": requirement + "\n"})
    path.write_text(
        "from sqlalchemy import create_engine\n\nengine = create_engine('postgresql://')\n\n\n"
        "def load():\n    conn = engine.raw_connection()\n    try:\n"
        "        return conn.cursor().fetchall()\n    finally:\n        conn.close()\n"
    )
    settings = Settings.from_config(Config(), extend_select=["SG108"], use_cache=False)
    result = fix_source(path.read_bytes(), path, settings, "module.py")
    assert result.text is not None and entered in result.text
