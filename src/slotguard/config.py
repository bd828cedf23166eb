"""Find, read and validate ``[tool.slotguard]`` (SPEC section 4).

Configuration comes from the nearest ``slotguard.toml`` or ``pyproject.toml``
that has a ``[tool.slotguard]`` table, searching upwards from where the run
starts. Every key is checked: an unknown key or a bad value is a
``ConfigError`` naming the file, the key and, when one is close, the key that
was probably meant.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from slotguard.model.vocabulary import Catalog, Constructor, Kind, ResourceType

OUTPUT_FORMATS = ("full", "concise", "json", "sarif", "github")
LEAK_MODES = ("fail", "warn", "off")


class ConfigError(Exception):
    """The configuration is wrong; the message says where and how to fix it."""


@dataclass(frozen=True, slots=True)
class Budget:
    max_connections: int
    reserved_connections: int = 3
    workers: int = 1


@dataclass(frozen=True, slots=True)
class Runtime:
    """``[tool.slotguard.runtime]``: the pytest plugin's settings (SPEC section 9)."""

    leaks: str = "off"
    depth: int | None = None
    """Project frames per taking stack; None: the runtime's default."""
    idle_threshold: float | None = None
    """Seconds a transaction may idle between statements; None: not watched."""


@dataclass(frozen=True, slots=True)
class Config:
    """The validated contents of ``[tool.slotguard]``; all optional."""

    path: Path | None = None
    select: tuple[str, ...] | None = None
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    exclude: tuple[str, ...] | None = None
    extend_exclude: tuple[str, ...] = ()
    respect_gitignore: bool = True
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    output_format: str | None = None
    cache_dir: str | None = None
    resources: Catalog | None = None
    budget: Budget | None = None
    external_calls: tuple[str, ...] = field(default=())
    runtime: Runtime = Runtime()

    @property
    def root(self) -> Path:
        """The directory that relative paths in the configuration start from."""
        return self.path.parent if self.path is not None else Path.cwd()


def discover(start: Path) -> Path | None:
    """The nearest configuration file at or above ``start``."""
    directory = start if start.is_dir() else start.parent
    directory = directory.resolve()
    for candidate in (directory, *directory.parents):
        own = candidate / "slotguard.toml"
        if own.is_file():
            return own
        project = candidate / "pyproject.toml"
        if project.is_file() and _has_tool_table(project):
            return project
    return None


def _has_tool_table(path: Path) -> bool:
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return b"tool.slotguard" in data


def load(path: Path) -> Config:
    """Read and validate a configuration file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: is not valid UTF-8") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: is not valid TOML: {error}") from None
    tool = data.get("tool")
    nested = tool.get("slotguard") if isinstance(tool, dict) else None
    if path.name == "pyproject.toml" and nested is None:
        return Config(path=path)
    if nested is not None:
        return _Validator(path, "[tool.slotguard] ").config(nested)
    # A file of its own (slotguard.toml, or any file given to --config).
    return _Validator(path, "").config(data)


# -- validation ----------------------------------------------------------------

_KINDS = {
    "pool": Kind.POOL,
    "pooled-connection": Kind.POOLED_CONNECTION,
    "connection": Kind.CONNECTION,
    "session": Kind.SESSION,
    "engine-connection": Kind.ENGINE_CONNECTION,
}


class _Validator:
    def __init__(self, path: Path, where: str) -> None:
        self.path = path
        self.where = where
        """The table the keys are in, as a prefix of the messages."""

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {self.where}`{key}`: {problem}")

    def check_keys(self, table: Mapping[str, Any], allowed: list[str], prefix: str) -> None:
        for key in table:
            if key in allowed:
                continue
            import difflib  # only for a hint on an error

            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hint = (
                f"; did you mean `{prefix}{close[0]}`?"
                if close
                else (f"; known keys: {', '.join(allowed)}")
            )
            raise ConfigError(f"{self.path}: {self.where}unknown key `{prefix}{key}`{hint}")

    def table(self, value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, not {_describe(value)}")
        return value

    def strings(self, value: Any, key: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            hint = ""
            if isinstance(value, str):
                parts = [part.strip() for part in value.split(",") if part.strip()]
                hint = f" (write {_toml(parts)})"
            raise self.fail(key, f"must be a list of strings, not {_describe(value)}{hint}")
        return tuple(value)

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, not {_describe(value)}")
        return value

    def string(self, value: Any, key: str, choices: tuple[str, ...] = ()) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, not {_describe(value)}")
        if choices and value not in choices:
            import difflib  # only for a hint on an error

            close = difflib.get_close_matches(value, choices, n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            raise self.fail(key, f"must be one of {', '.join(choices)}, not `{value}`{hint}")
        return value

    def integer(self, value: Any, key: str, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be a whole number, not {_describe(value)}")
        if value < minimum:
            raise self.fail(key, f"must be at least {minimum}, not {value}")
        return value

    def codes(self, value: Any, key: str) -> tuple[str, ...]:
        from slotguard.selection import SelectionError, check_selector

        codes = self.strings(value, key)
        for code in codes:
            try:
                check_selector(code)
            except SelectionError as error:
                raise self.fail(key, str(error)) from None
        return codes

    def config(self, table: Any) -> Config:
        table = self.table(table, "tool.slotguard")
        handlers: dict[str, Callable[[Any, str], tuple[str, Any]]] = {
            "select": lambda v, k: ("select", self.codes(v, k)),
            "extend-select": lambda v, k: ("extend_select", self.codes(v, k)),
            "ignore": lambda v, k: ("ignore", self.codes(v, k)),
            "exclude": lambda v, k: ("exclude", self.strings(v, k)),
            "extend-exclude": lambda v, k: ("extend_exclude", self.strings(v, k)),
            "respect-gitignore": lambda v, k: ("respect_gitignore", self.boolean(v, k)),
            "per-file-ignores": lambda v, k: ("per_file_ignores", self.per_file_ignores(v, k)),
            "output-format": lambda v, k: ("output_format", self.string(v, k, OUTPUT_FORMATS)),
            "cache-dir": lambda v, k: ("cache_dir", self.string(v, k)),
            "resources": lambda v, k: ("resources", self.resources(v, k)),
            "transactions": lambda v, k: ("external_calls", self.transactions(v, k)),
            "budget": lambda v, k: ("budget", self.budget(v, k)),
            "runtime": lambda v, k: ("runtime", self.runtime(v, k)),
        }
        self.check_keys(table, list(handlers), "")
        values: dict[str, Any] = {"path": self.path}
        for key, value in table.items():
            attribute, converted = handlers[key](value, key)
            values[attribute] = converted
        return Config(**values)

    def per_file_ignores(self, value: Any, key: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
        table = self.table(value, key)
        return tuple(
            (pattern, self.codes(codes, f"{key}.{pattern}")) for pattern, codes in table.items()
        )

    def transactions(self, value: Any, key: str) -> tuple[str, ...]:
        table = self.table(value, key)
        self.check_keys(table, ["external-calls"], f"{key}.")
        return self.strings(table.get("external-calls", []), f"{key}.external-calls")

    def budget(self, value: Any, key: str) -> Budget:
        table = self.table(value, key)
        self.check_keys(table, ["max-connections", "reserved-connections", "workers"], f"{key}.")
        if "max-connections" not in table:
            raise self.fail(key, "needs `max-connections`, the server's max_connections")
        budget = Budget(
            max_connections=self.integer(table["max-connections"], f"{key}.max-connections", 1),
            reserved_connections=self.integer(
                table.get("reserved-connections", 3), f"{key}.reserved-connections"
            ),
            workers=self.integer(table.get("workers", 1), f"{key}.workers", 1),
        )
        if budget.reserved_connections >= budget.max_connections:
            raise self.fail(
                f"{key}.reserved-connections",
                f"must be smaller than `max-connections` ({budget.max_connections}), "
                f"not {budget.reserved_connections}",
            )
        return budget

    def runtime(self, value: Any, key: str) -> Runtime:
        table = self.table(value, key)
        self.check_keys(table, ["leaks", "depth", "idle-threshold"], f"{key}.")
        depth = table.get("depth")
        idle = table.get("idle-threshold")
        if idle is not None and (
            isinstance(idle, bool) or not isinstance(idle, (int, float)) or idle <= 0
        ):
            problem = f"must be a positive number of seconds, not {_describe(idle)}"
            raise self.fail(f"{key}.idle-threshold", problem)
        return Runtime(
            leaks=self.string(table.get("leaks", "off"), f"{key}.leaks", LEAK_MODES),
            depth=None if depth is None else self.integer(depth, f"{key}.depth", 1),
            idle_threshold=None if idle is None else float(idle),
        )

    def resources(self, value: Any, key: str) -> Catalog:
        table = self.table(value, key)
        self.check_keys(
            table,
            ["acquire", "context-managers", "release-functions", "owners"],
            f"{key}.",
        )
        types: list[ResourceType] = []
        constructors: list[Constructor] = []
        for section, only_as_context_manager in (("acquire", False), ("context-managers", True)):
            entries = table.get(section, [])
            if not isinstance(entries, list):
                raise self.fail(
                    f"{key}.{section}", f"must be an array of tables, not {_describe(entries)}"
                )
            for index, entry in enumerate(entries):
                where = f"{key}.{section}[{index}]"
                resource_type, constructor = self.acquirer(entry, where, only_as_context_manager)
                types.append(resource_type)
                constructors.append(constructor)
        return Catalog(
            types=tuple(types),
            constructors=tuple(constructors),
            releasing_functions=self.strings(
                table.get("release-functions", []), f"{key}.release-functions"
            ),
            owner_classes=self.strings(table.get("owners", []), f"{key}.owners"),
        )

    def acquirer(
        self, entry: Any, where: str, only_as_context_manager: bool
    ) -> tuple[ResourceType, Constructor]:
        entry = self.table(entry, where)
        allowed = [
            "call",
            "kind",
            "await",
            "release-methods",
            "returned-by",
            "with-releases",
            "context-manager",
        ]
        self.check_keys(entry, allowed, f"{where}.")
        if "call" not in entry:
            raise self.fail(where, "needs `call`, the qualified name of the acquiring function")
        call = self.string(entry["call"], f"{where}.call")
        if "." not in call:
            raise self.fail(
                f"{where}.call", f"`{call}` must be qualified with its module (`myapp.db.{call}`)"
            )
        kind_name = self.string(
            entry.get("kind", "pooled-connection"), f"{where}.kind", tuple(_KINDS)
        )
        awaited = entry.get("await")
        if awaited is not None:
            awaited = self.boolean(awaited, f"{where}.await")
        name = f"{call}()"
        form = ""
        if "context-manager" in entry:
            manager = self.string(entry["context-manager"], f"{where}.context-manager")
            prefix = "async with" if awaited else "with"
            form = f"{prefix} {manager.rsplit('.', 1)[-1]}(...)"
        resource_type = ResourceType(
            name=name,
            kind=_KINDS[kind_name],
            library=call.split(".", 1)[0],
            release_methods=self.strings(
                entry.get("release-methods", ["close"]), f"{where}.release-methods"
            ),
            returned_by=self.strings(entry.get("returned-by", []), f"{where}.returned-by"),
            with_releases=self.boolean(
                entry.get("with-releases", only_as_context_manager), f"{where}.with-releases"
            ),
            context_manager_form=form,
            is_async=bool(awaited),
        )
        constructor = Constructor(
            callee=call,
            produces=name,
            awaited=awaited if awaited is not None else False,
            context_manager_only=only_as_context_manager,
        )
        return resource_type, constructor


def _describe(value: Any) -> str:
    """What a value is, and the value itself, as the file spells it."""
    if isinstance(value, bool):
        kind = "the boolean"
    elif isinstance(value, int | float):
        kind = "the number"
    elif isinstance(value, str):
        kind = "the string"
    elif isinstance(value, list):
        kind = "the list"
    elif isinstance(value, dict):
        kind = "the table"
    else:
        kind = f"the {type(value).__name__}"
    return f"{kind} {_toml(value)}"


def _toml(value: Any, limit: int = 60) -> str:
    """``value`` written as in TOML, cut short when long."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, list):
        text = "[" + ", ".join(_toml(item, limit) for item in value) + "]"
    elif isinstance(value, dict):
        items = ", ".join(f"{_key(name)} = {_toml(item, limit)}" for name, item in value.items())
        text = "{" + items + "}"
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _key(name: str) -> str:
    bare = name.replace("-", "").replace("_", "").isalnum()
    return name if bare else json.dumps(name, ensure_ascii=False)
