"""Generate the SG000 fixtures that hold bytes no editor would keep.

Run ``python tests/generate_sg000_fixtures.py`` from the repository root.
"""

from __future__ import annotations

from pathlib import Path

DIRECTORY = Path(__file__).resolve().parent.parent / "fixtures" / "rules" / "sg000"


def contents() -> dict[str, bytes]:
    return {
        "binary.py": b"import asyncpg  # error: SG000\x00\x01\x02\xff\xfe binary payload\n",
        "latin1_without_coding.py": (
            "import asyncpg\nname = 'caf\u00e9'  # error: SG000\n".encode("latin-1")
        ),
        "latin1_with_coding.py": (
            "# -*- coding: latin-1 -*-\nimport asyncpg\nname = 'caf\u00e9'\n".encode("latin-1")
        ),
        "deep_brackets.py": (
            "x = " + "(" * 5000 + "1" + ")" * 5000 + "  # error: SG000\nimport asyncpg\n"
        ).encode(),
        "deep_operators.py": (
            "x = " + " + ".join(["1"] * 5000) + "  # error: SG000\nimport asyncpg\n"
        ).encode(),
        "long_boolean_chain.py": (
            "import asyncpg\nx = " + " and ".join(["a"] * 20000) + "\n"
        ).encode(),
        "empty.py": b"",
    }


def main() -> None:
    for name, data in contents().items():
        (DIRECTORY / name).write_bytes(data)


if __name__ == "__main__":
    main()
