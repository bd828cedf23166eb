"""The settings of one run: configuration merged with command-line options."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from slotguard.config import Budget, Config
from slotguard.files import DEFAULT_EXCLUDES
from slotguard.model import Model
from slotguard.selection import selected_codes

if TYPE_CHECKING:
    import pathspec


@dataclass(frozen=True)
class Settings:
    config: Config = field(default_factory=Config)
    codes: frozenset[str] = field(default_factory=lambda: selected_codes(None))
    extra_excludes: tuple[str, ...] = ()
    use_cache: bool = True
    jobs: int | None = None

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        select: Iterable[str] | None = None,
        extend_select: Iterable[str] = (),
        ignore: Iterable[str] = (),
        exclude: Iterable[str] = (),
        use_cache: bool = True,
        jobs: int | None = None,
    ) -> Settings:
        chosen_select = list(select) if select is not None else None
        if chosen_select is None and config.select is not None:
            chosen_select = list(config.select)
        codes = selected_codes(
            chosen_select,
            [*config.extend_select, *extend_select],
            [*config.ignore, *ignore],
        )
        return cls(
            config=config,
            codes=codes,
            extra_excludes=tuple(exclude),
            use_cache=use_cache,
            jobs=jobs,
        )

    @property
    def root(self) -> Path:
        return self.config.root

    @cached_property
    def model(self) -> Model:
        return Model(extension=self.config.resources)

    @property
    def cache_directory(self) -> Path:
        configured = self.config.cache_dir
        if configured is None:
            return self.root / ".slotguard_cache"
        path = Path(configured)
        return path if path.is_absolute() else self.root / path

    @property
    def budget(self) -> Budget | None:
        return self.config.budget

    @property
    def excludes(self) -> tuple[str, ...]:
        base = self.config.exclude if self.config.exclude is not None else DEFAULT_EXCLUDES
        return (*base, *self.config.extend_exclude, *self.extra_excludes)

    @cached_property
    def _per_file(self) -> list[tuple[pathspec.GitIgnoreSpec, tuple[str, ...]]]:
        if not self.config.per_file_ignores:
            return []
        import pathspec  # only with per-file-ignores: a one-file run does without

        return [
            (pathspec.GitIgnoreSpec.from_lines([pattern]), codes)
            for pattern, codes in self.config.per_file_ignores
        ]

    def codes_for(self, path: Path) -> frozenset[str]:
        """The codes that run on one file, after ``per-file-ignores``."""
        if not self._per_file:
            return self.codes
        try:
            relative = path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            relative = path.as_posix()
        ignored = [
            code for spec, codes in self._per_file if spec.match_file(relative) for code in codes
        ]
        if not ignored:
            return self.codes
        return frozenset(
            code
            for code in self.codes
            if code == "SG000" or not any(code.startswith(i.upper()) for i in ignored)
        )

    @cached_property
    def fingerprint(self) -> str:
        """Identifies everything about the settings that can change findings."""
        digest = hashlib.sha256()
        digest.update(repr(sorted(self.codes)).encode())
        digest.update(repr(self.config.resources).encode())
        digest.update(repr(self.config.budget).encode())
        digest.update(repr(self.config.external_calls).encode())
        digest.update(repr(self.config.per_file_ignores).encode())
        return digest.hexdigest()[:16]
