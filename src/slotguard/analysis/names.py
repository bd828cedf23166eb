"""Imports and aliases: from the names a module uses to qualified names.

``import asyncpg as apg`` makes ``apg.create_pool`` mean ``asyncpg.create_pool``;
``from sqlalchemy.orm import Session as S`` makes ``S`` mean
``sqlalchemy.orm.Session``. Relative imports are resolved against the module's
own dotted name, derived from its path.
"""

from __future__ import annotations

import libcst as cst

from slotguard.syntax import dotted_name


class ImportMap:
    """Local names bound by imports, and what they mean."""

    __slots__ = ("_aliases", "is_package", "module_name")

    def __init__(self, module_name: str | None, *, is_package: bool = False) -> None:
        self._aliases: dict[str, str] = {}
        self.module_name = module_name
        self.is_package = is_package

    def add(self, statement: cst.Import | cst.ImportFrom) -> None:
        if isinstance(statement, cst.Import):
            for alias in statement.names:
                full = dotted_name(alias.name)
                if full is None:
                    continue
                if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                    self._aliases[alias.asname.name.value] = full
                else:
                    # ``import a.b`` binds ``a``.
                    head = full.split(".", 1)[0]
                    self._aliases.setdefault(head, head)
            return
        base = self._from_base(statement)
        if base is None or isinstance(statement.names, cst.ImportStar):
            return
        for alias in statement.names:
            name = dotted_name(alias.name)
            if name is None:
                continue
            local = name
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                local = alias.asname.name.value
            self._aliases[local] = f"{base}.{name}" if base else name

    def _from_base(self, statement: cst.ImportFrom) -> str | None:
        module = dotted_name(statement.module) if statement.module is not None else ""
        level = len(statement.relative)
        if level == 0:
            return module
        if self.module_name is None:
            return None
        package = self.module_name.split(".")
        drop = level - 1 if self.is_package else level
        if drop > len(package) or (drop == len(package) and not module):
            return None
        anchor = package[: len(package) - drop] if drop else package
        return ".".join([*anchor, module] if module else anchor)

    def resolve(self, dotted: str) -> str | None:
        """The qualified name of a dotted local name, or None if not imported."""
        head, sep, rest = dotted.partition(".")
        target = self._aliases.get(head)
        if target is None:
            return None
        return f"{target}{sep}{rest}"

    def __contains__(self, name: str) -> bool:
        return name in self._aliases

    def qualified_names(self) -> list[str]:
        return list(self._aliases.values())

    def items(self) -> list[tuple[str, str]]:
        """``(local name, qualified name)`` for every imported name."""
        return list(self._aliases.items())
