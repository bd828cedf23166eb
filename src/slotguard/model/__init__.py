"""The resource model: which calls acquire what, and how it is released.

``Model`` answers questions about qualified names against the built-in catalog
merged with the user's configuration. Questions about a particular piece of
code (what does this name hold here?) are answered by ``slotguard.analysis.infer``.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property

from slotguard.model.catalog import BUILTIN
from slotguard.model.vocabulary import Catalog, Constructor, Kind, Method, ResourceType

__all__ = ["Catalog", "Constructor", "Kind", "Method", "Model", "ResourceType"]


class Model:
    """Lookups over a catalog, indexed once."""

    def __init__(self, catalog: Catalog = BUILTIN, extension: Catalog | None = None) -> None:
        if extension is not None:
            catalog = catalog.merged(extension)
        self.catalog = catalog
        self.extension = extension
        self._types: dict[str, ResourceType] = {}
        self._annotations: dict[str, ResourceType] = {}
        for resource_type in catalog.types:
            self._types[resource_type.name] = resource_type
            self._annotations[resource_type.name] = resource_type
            for annotation in resource_type.annotations:
                self._annotations[annotation] = resource_type
        self._constructors = {c.callee: c for c in catalog.constructors}
        self._releasing_functions = frozenset(catalog.releasing_functions)
        self._owner_classes = frozenset(catalog.owner_classes)
        self._libraries: frozenset[str] | None = None
        self._name_triggers: frozenset[str] | None = None

    def type(self, name: str) -> ResourceType:
        return self._types[name]

    def types(self) -> Iterable[ResourceType]:
        return self._types.values()

    def annotated(self, qualified: str) -> ResourceType | None:
        """The type an annotation's qualified name denotes."""
        return self._annotations.get(qualified)

    def constructor(self, qualified: str) -> Constructor | None:
        return self._constructors.get(qualified)

    def releases_argument(self, qualified: str) -> bool:
        """Whether the function releases the resource passed as its first argument."""
        return qualified in self._releasing_functions

    def is_owner_class(self, qualified: str) -> bool:
        return qualified in self._owner_classes

    def libraries(self) -> frozenset[str]:
        """Top-level module names whose import makes a file worth analysing
        (computed once: the prefilter asks for every file)."""
        if self._libraries is None:
            self._libraries = self._library_roots()
        return self._libraries

    def _library_roots(self) -> frozenset[str]:
        roots = {name.split(".", 1)[0] for name in self._constructors}
        roots.update(name.split(".", 1)[0] for name in self._annotations)
        roots.update(name.split(".", 1)[0] for name in self._releasing_functions)
        roots.update(name.split(".", 1)[0] for name in self._owner_classes)
        return frozenset(roots)

    def qualified_names(self) -> frozenset[str]:
        """Every qualified name the model gives meaning to."""
        return frozenset(
            (
                *self._constructors,
                *self._annotations,
                *self._releasing_functions,
                *self._owner_classes,
            )
        )

    @cached_property
    def _prefixes(self) -> frozenset[str]:
        prefixes: set[str] = set()
        for name in self.qualified_names():
            parts = name.split(".")
            prefixes.update(".".join(parts[:end]) for end in range(1, len(parts) + 1))
        return frozenset(prefixes)

    def leads_somewhere(self, imported: str) -> bool:
        """Whether importing ``imported`` can give a name a type the model
        knows: it is such a name, or a module on the way to one
        (``sqlalchemy.orm``, ``django.db.transaction``)."""
        return imported in self._prefixes

    def name_triggers(self) -> frozenset[str]:
        """Identifiers that make a file worth analysing wherever they occur:
        the user's own wrappers, whose names even a relative import spells
        out (computed once)."""
        if self._name_triggers is None:
            self._name_triggers = self._wrapper_names()
        return self._name_triggers

    def _wrapper_names(self) -> frozenset[str]:
        words: set[str] = set()
        if self.extension is not None:
            extension = self.extension
            for qualified in (
                *(c.callee for c in extension.constructors),
                *(a for t in extension.types for a in (t.name, *t.annotations)),
                *extension.releasing_functions,
                *extension.owner_classes,
            ):
                words.add(qualified.rsplit(".", 1)[-1])
        return frozenset(words)
