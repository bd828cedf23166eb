"""What the names of one module hold, inferred from the code and the model.

Sources of knowledge, in SPEC section 1's order: assignments from acquiring
calls; parameter and variable annotations (``Optional``, unions,
``Annotated[..., Depends(...)]``, string annotations, module-level aliases of
those); attributes assigned on ``self`` in the same class; attributes on
application state (``app.state.pool``); dependency providers that yield a
session; functions of the module that return what they acquired. A name none
of these explains has no type: slotguard does not guess.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property, partial
from typing import TypeVar

import libcst as cst

from slotguard.analysis.index import (
    EMPTY_INDEX,
    FALSY_SHAPE,
    NONE_SHAPE,
    OTHER_SHAPE,
    TUPLE_SHAPE,
    ProjectIndex,
    Symbol,
    SymbolKind,
)
from slotguard.analysis.names import ImportMap
from slotguard.model import Model
from slotguard.model.catalog import (
    AWAITABLE_WRAPPERS,
    BORROWED_BINDS,
    CONNECTION_BIND_NAMES,
    CONNECTION_METHODS,
    DEPENDENCY_MARKERS,
    SERVERLESS_URL_SCHEMES,
)
from slotguard.model.lifecycle import APPLICATION_MAPPINGS
from slotguard.model.vocabulary import Kind, Method, ResourceType
from slotguard.syntax import (
    assigned_names,
    decorator_names,
    dotted_name,
    keyword_argument,
    last_name,
    string_value,
    unwrap_await,
    walk,
    walk_scope,
)

_STATE_ATTRIBUTES = ("state", "ctx")
"""``app.state`` (Starlette, FastAPI, Litestar) and ``app.ctx`` (Sanic)."""

_CONTEXT_MANAGER_DECORATORS = ("contextlib.contextmanager", "contextlib.asynccontextmanager")
_FIXTURE_DECORATORS = ("pytest.fixture", "pytest_asyncio.fixture")

_T = TypeVar("_T")


class Origin(enum.Enum):
    """How a name came to hold its value; decides who must release it."""

    ACQUIRED = "acquired"
    """Assigned from an acquiring call in this scope: this scope must release it."""
    PARAMETER = "parameter"
    """Received from the caller, who owns it."""
    INJECTED = "injected"
    """Provided by a dependency (``Depends(get_db)``): request-scoped."""
    ENTERED = "entered"
    """Bound by ``with ... as name``: released when the block ends."""
    ALIAS = "alias"
    """Another name for a value bound in this scope."""
    OUTER = "outer"
    """Found in an enclosing function, the class, application state or the module."""


@dataclass(frozen=True, slots=True)
class Produced:
    """An expression that produces a value of a known type by calling something."""

    type: ResourceType
    expression: cst.BaseExpression
    """The whole producing expression: the ``Await`` when awaited, else the call."""
    call: cst.Call
    complete: bool
    """False when nothing is held yet: an unawaited coroutine, or a context
    manager that must be entered (``pool.connection()``)."""
    callee: str
    """How the code spells what it called, for messages (``pool.acquire``)."""
    method: Method | None = None
    """The catalog method that produced it, when it was a method call."""
    element: int | None = None
    """A project function that returns the resource in a tuple: its
    position there (``conn, cur = open_db()``); None when it is the value."""
    via_project: bool = False
    """Produced by a project function or method that wraps the library's
    call: its context-manager form, if any, is the project's, unknown here."""
    mixed: frozenset[str] = frozenset()
    """A project function that returns the resource on some paths and
    something else on others: the shapes of what else
    (``FunctionInfo.returns_something_else``); empty when it always does."""

    @property
    def acquires(self) -> bool:
        """Whether evaluating the expression leaves the caller holding a resource."""
        return self.complete and self.type.kind.is_resource


@dataclass(frozen=True, slots=True)
class Binding:
    name: str
    type: ResourceType
    origin: Origin
    node: cst.CSTNode


@dataclass(eq=False, slots=True)
class ClassInfo:
    node: cst.ClassDef
    name: str
    methods: dict[str, FunctionInfo]
    annotations: dict[str, cst.BaseExpression]


class FunctionInfo:
    """One ``def`` or ``async def``, with where it sits."""

    def __init__(
        self,
        module: ModuleInfo,
        node: cst.FunctionDef,
        cls: ClassInfo | None,
        parent: FunctionInfo | None,
    ) -> None:
        self.module = module
        self.node = node
        self.name = node.name.value
        self.cls = cls
        self.parent = parent
        self.is_async = node.asynchronous is not None
        self.decorators = [module.qualify(name) or name for name in decorator_names(node)]
        self._scope: Scope | None = None

    @cached_property
    def body_nodes(self) -> NodeIndex:
        """The nodes of the function's body, nested scopes not entered: built
        once, whatever number of ``Scope`` objects are built over it."""
        return NodeIndex(walk_scope(self.node.body))

    @property
    def scope(self) -> Scope:
        if self._scope is None:
            if not self.module.settled:
                return self.module.provisional_scope(self)
            self._scope = Scope(self.module, self)
        return self._scope

    @cached_property
    def is_generator(self) -> bool:
        return bool(self.scope.of_type(cst.Yield))

    @property
    def is_method(self) -> bool:
        return self.cls is not None and self.parent is None

    @property
    def is_context_manager(self) -> bool:
        """``__enter__``/``__aenter__`` or a ``@contextmanager`` generator."""
        if self.is_method and self.name in ("__enter__", "__aenter__"):
            return True
        return any(d in _CONTEXT_MANAGER_DECORATORS for d in self.decorators)

    @property
    def is_fixture(self) -> bool:
        return any(d in _FIXTURE_DECORATORS for d in self.decorators)

    @cached_property
    def is_dependency_provider(self) -> bool:
        """Referenced as ``Depends(f)``/``Provide(f)`` in this module."""
        return self.name in self.module.dependency_targets

    @property
    def lends_what_it_yields(self) -> bool:
        """A context-manager generator or dependency provider: what it yields is
        lent to the caller and comes back when the generator resumes."""
        return self.is_generator and (
            self.is_context_manager or self.is_dependency_provider or self.is_fixture
        )

    @property
    def self_name(self) -> str | None:
        """The name of the instance parameter of a method."""
        if not self.is_method:
            return None
        if "staticmethod" in self.decorators or "classmethod" in self.decorators:
            return None
        params = self.node.params
        positional = [*params.posonly_params, *params.params]
        return positional[0].name.value if positional else None

    def yielded_type(self) -> ResourceType | None:
        """The resource type this generator yields, if it yields one."""
        if not self.is_generator:
            return None
        scope = self.scope
        for node in scope.of_type(cst.Yield):
            assert isinstance(node, cst.Yield)
            if isinstance(node.value, cst.BaseExpression):
                typed = scope.type_of(node.value)
                if typed is not None and typed.kind.is_resource:
                    return typed
        return None

    def returned_acquisition(self) -> ResourceType | None:
        """The type this function acquires and returns to its caller, if any
        (also as an element of a returned tuple, ``returned_element``): such
        a function is an acquiring call itself."""
        found = self._returned()
        return found[0] if found is not None else None

    def returned_element(self) -> int | None:
        """Where in the returned tuple the acquired resource is
        (``return conn, cur`` → 0); None when it is returned alone."""
        found = self._returned()
        return found[1] if found is not None else None

    def returns_something_else(self) -> frozenset[str]:
        """What a ``return`` of this acquiring function gives back other than
        the resource in its place (``return conn, cur`` beside ``return
        session``, ``return None``), as shapes (``OTHER_SHAPES``): a caller's
        ``with`` or ``close()`` would break on those paths, unless a test
        excludes them first (``if db is None: return``). Empty when every
        ``return`` gives the resource."""
        found = self._returned()
        if found is None:
            return frozenset()
        element = found[1]
        scope = self.scope
        shapes: set[str] = set()
        for node in scope.of_type(cst.Return):
            assert isinstance(node, cst.Return)
            value = node.value
            if value is None:
                shapes.add(NONE_SHAPE)
                continue
            if element is None:
                if _acquired_value(scope, value) is None:
                    shapes.add(_shape(value))
                continue
            if (
                not isinstance(value, cst.Tuple)
                or len(value.elements) <= element
                or _acquired_value(scope, value.elements[element].value) is None
            ):
                # A caller unpacks the tuple: no test of its parts is read.
                shapes.add(OTHER_SHAPE)
        return frozenset(shapes)

    def _returned(self) -> tuple[ResourceType, int | None] | None:
        if self.is_generator:
            return None
        scope = self.scope
        for node in scope.of_type(cst.Return):
            assert isinstance(node, cst.Return)
            if node.value is None:
                continue
            typed = _acquired_value(scope, node.value)
            if typed is not None:
                return typed, None
            if isinstance(node.value, cst.Tuple):
                for position, element in enumerate(node.value.elements):
                    typed = _acquired_value(scope, element.value)
                    if typed is not None:
                        return typed, position
        return None

    def __repr__(self) -> str:
        return f"<FunctionInfo {self.name}>"


def _shape(value: cst.BaseExpression) -> str:
    if isinstance(value, cst.Name):
        if value.value == "None":
            return NONE_SHAPE
        return FALSY_SHAPE if value.value == "False" else OTHER_SHAPE
    if isinstance(value, cst.Integer | cst.Float) and not value.evaluated_value:
        return FALSY_SHAPE
    if isinstance(value, cst.SimpleString) and value.evaluated_value in ("", b""):
        return FALSY_SHAPE
    if isinstance(value, cst.List | cst.Dict | cst.Set) and not value.elements:
        return FALSY_SHAPE
    if isinstance(value, cst.Tuple):
        return TUPLE_SHAPE if value.elements else FALSY_SHAPE
    return OTHER_SHAPE


class ModuleInfo:
    """Definitions, imports and typed state of one module."""

    def __init__(
        self,
        tree: cst.Module,
        model: Model,
        module_name: str | None = None,
        *,
        is_package: bool = False,
        index: ProjectIndex = EMPTY_INDEX,
        is_test: bool = False,
    ) -> None:
        self.tree = tree
        self.model = model
        self.module_name = module_name
        self.is_test = is_test
        """Test code by its path (``tests/``, ``test_*.py``, ``conftest.py``)."""
        self.index = index
        self.imports = ImportMap(module_name, is_package=is_package)
        self.functions: list[FunctionInfo] = []
        self.classes: list[ClassInfo] = []
        self.definitions: dict[str, FunctionInfo | ClassInfo] = {}
        self._module_annotations: dict[str, cst.BaseExpression] = {}
        self._memo: dict[str, object] = {}
        self._in_play: list[str] = []
        """The keys ``_guarded`` is computing, outermost first: their
        provisional values are in play."""
        self._provisional_scopes: dict[tuple[object, ...], Scope] = {}
        self._returns: dict[int, ResourceType | None] = {}
        self._returning: set[int] = set()
        self._declares_global: set[int] = set()
        self._collect(tree.body, None, None, top_level=True)

    def _guarded(self, key: str, compute: Callable[[], _T], provisional: _T) -> _T:
        """Memoise ``compute``; a cycle back into it sees ``provisional``.

        What is computed while some provisional value is in play may be
        incomplete, so it is kept only by the outermost computation.
        """
        if key in self._memo:
            return self._memo[key]  # type: ignore[return-value]
        self._memo[key] = provisional
        self._in_play.append(key)
        try:
            value = compute()
        finally:
            self._in_play.pop()
        if not self._in_play:
            self._memo[key] = value
            self._provisional_scopes.clear()
        else:
            del self._memo[key]
        return value

    def cached(self, key: str, compute: Callable[[], _T]) -> _T:
        """Something derived from this module, computed once: the rules of a
        family share their analyses this way."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]  # type: ignore[return-value]

    @property
    def settled(self) -> bool:
        """No provisional value is in play: results may be memoised."""
        return not self._in_play

    def provisional_scope(self, function: FunctionInfo) -> Scope:
        """The scope of a function while provisional values are in play (it
        is not kept on the function then: it may see them).

        Building it again would give the same scope as long as nothing it may
        read has changed: the keys in play, the values memoised so far (only
        ever added to, so their number tells them) and the state of
        ``returned_acquisition``. Lookups through enclosing functions ask for
        the same scopes over and over, so it is built once per such state.
        """
        key = (
            function,
            tuple(self._in_play),
            len(self._memo) - len(self._in_play),
            len(self._returns),
            frozenset(self._returning),
        )
        scope = self._provisional_scopes.get(key)
        if scope is None:
            scope = Scope(self, function)
            self._provisional_scopes[key] = scope
        return scope

    # -- collection -------------------------------------------------------

    def _collect(
        self,
        body: object,
        cls: ClassInfo | None,
        parent: FunctionInfo | None,
        *,
        top_level: bool,
    ) -> None:
        for node in _statements(body):
            if isinstance(node, cst.FunctionDef):
                info = FunctionInfo(self, node, cls, parent)
                self.functions.append(info)
                if cls is not None and parent is None:
                    cls.methods.setdefault(info.name, info)
                elif top_level:
                    self.definitions[info.name] = info
                self._collect(node.body, None, info, top_level=False)
            elif isinstance(node, cst.ClassDef):
                class_info = ClassInfo(node, node.name.value, {}, {})
                self.classes.append(class_info)
                if top_level:
                    self.definitions[class_info.name] = class_info
                for statement in _statements(node.body):
                    if isinstance(statement, cst.AnnAssign) and isinstance(
                        statement.target, cst.Name
                    ):
                        class_info.annotations[statement.target.value] = (
                            statement.annotation.annotation
                        )
                self._collect(node.body, class_info, parent, top_level=False)
            elif isinstance(node, (cst.Import, cst.ImportFrom)):
                self.imports.add(node)
            elif top_level and isinstance(node, (cst.Assign, cst.AnnAssign)):
                self._note_module_assignment(node)
            elif isinstance(node, cst.Global) and parent is not None:
                self._declares_global.add(id(parent.node))

    def _note_module_assignment(self, node: cst.Assign | cst.AnnAssign) -> None:
        if isinstance(node, cst.AnnAssign):
            if isinstance(node.target, cst.Name):
                self._module_annotations[node.target.value] = node.annotation.annotation
            return
        # ``SessionDep = Annotated[Session, Depends(get_db)]``: an annotation alias.
        if isinstance(node.value, cst.Subscript) and len(node.targets) == 1:
            target = node.targets[0].target
            if isinstance(target, cst.Name):
                self._module_annotations.setdefault(target.value, node.value)

    @cached_property
    def dependency_targets(self) -> set[str]:
        """Names used as ``Depends(...)``/``Provide(...)`` anywhere in the module:
        in calls of any scope, parameter defaults and annotations, decorators."""
        found: set[str] = set()
        calls: list[cst.CSTNode] = []
        for scope in (self.module_scope, *(f.scope for f in self.functions)):
            calls += scope.of_type(cst.Call)
        for function in self.functions:
            node = function.node
            extra: list[cst.CSTNode] = [d.decorator for d in node.decorators]
            for param in _all_params(node.params):
                if param.default is not None:
                    extra.append(param.default)
                if param.annotation is not None:
                    extra.append(param.annotation.annotation)
            calls += (sub for part in extra for sub in walk_scope(part) if type(sub) is cst.Call)
        for call in calls:
            target = self._dependency_target(call)
            if target is not None:
                found.add(target)
        return found

    def _dependency_target(self, node: cst.CSTNode) -> str | None:
        """``get_db`` in ``Depends(get_db)``/``Provide(get_db)``."""
        if not isinstance(node, cst.Call) or not node.args:
            return None
        name = dotted_name(node.func)
        if name is None or name.rsplit(".", 1)[-1] not in DEPENDENCY_MARKERS:
            return None
        return dotted_name(node.args[0].value)

    # -- queries ----------------------------------------------------------

    def qualify(self, dotted: str) -> str | None:
        """The qualified name of a dotted name: through imports, or a definition
        of this module."""
        resolved = self.imports.resolve(dotted)
        if resolved is not None:
            return resolved
        head = dotted.split(".", 1)[0]
        if head in self.definitions and self.module_name:
            return f"{self.module_name}.{dotted}"
        return None

    def imported_symbol(self, dotted: str) -> Symbol | None:
        """What another module of the project says an imported name is."""
        if not self.index:
            return None
        qualified = self.imports.resolve(dotted)
        return self.index.symbol(qualified) if qualified is not None else None

    def imported_type(self, dotted: str) -> ResourceType | None:
        symbol = self.imported_symbol(dotted)
        if symbol is not None and symbol.kind is SymbolKind.VALUE and symbol.type_name:
            return self._type_named(symbol.type_name)
        return None

    def _type_named(self, name: str) -> ResourceType | None:
        try:
            return self.model.type(name)
        except KeyError:
            return None

    def annotation_type(self, annotation: cst.BaseExpression) -> ResourceType | None:
        """The resource type an annotation denotes, through Optional, unions,
        Annotated, strings and module-level aliases."""
        for candidate in self._annotation_candidates(annotation, depth=0):
            name = dotted_name(candidate)
            if name is None:
                continue
            qualified = self.qualify(name)
            if qualified is not None:
                found = self.model.annotated(qualified)
                if found is not None:
                    return found
        return None

    def annotation_provider(self, annotation: cst.BaseExpression) -> str | None:
        """``get_db`` in ``Annotated[Session, Depends(get_db)]``."""
        for candidate in self._annotation_candidates(annotation, depth=0, metadata=True):
            target = self._dependency_target(candidate)
            if target is not None:
                return target
        return None

    def _annotation_candidates(
        self, annotation: cst.BaseExpression, depth: int, *, metadata: bool = False
    ) -> Iterator[cst.BaseExpression]:
        if depth > 5:
            return
        text = string_value(annotation)
        if text is not None:
            try:
                annotation = cst.parse_expression(text)
            except cst.ParserSyntaxError:
                return
        if isinstance(annotation, cst.BinaryOperation):  # X | None
            yield from self._annotation_candidates(annotation.left, depth + 1, metadata=metadata)
            yield from self._annotation_candidates(annotation.right, depth + 1, metadata=metadata)
            return
        if isinstance(annotation, cst.Subscript):
            head = dotted_name(annotation.value) or ""
            last = head.rsplit(".", 1)[-1]
            elements = [
                element.slice.value
                for element in annotation.slice
                if isinstance(element.slice, cst.Index)
            ]
            if last in ("Optional", "Union"):
                for element in elements:
                    yield from self._annotation_candidates(element, depth + 1, metadata=metadata)
            elif last == "Annotated" and elements:
                yield from self._annotation_candidates(elements[0], depth + 1, metadata=metadata)
                if metadata:
                    yield from elements[1:]
            else:
                # ``async_sessionmaker[AsyncSession]``: the generic's own type.
                yield annotation.value
            return
        if isinstance(annotation, cst.Name) and annotation.value in self._module_annotations:
            alias = self._module_annotations[annotation.value]
            yield from self._annotation_candidates(alias, depth + 1, metadata=metadata)
            return
        yield annotation

    def provided_type(self, dotted: str) -> ResourceType | None:
        """What a dependency provider of another module yields or returns."""
        symbol = self.imported_symbol(dotted)
        if symbol is None or symbol.type_name is None:
            return None
        if symbol.kind in (SymbolKind.PROVIDER, SymbolKind.ACQUIRER):
            return self._type_named(symbol.type_name)
        return None

    def function_named(self, dotted: str) -> FunctionInfo | None:
        definition = self.definitions.get(dotted)
        return definition if isinstance(definition, FunctionInfo) else None

    def returned_acquisition(self, function: FunctionInfo) -> ResourceType | None:
        """Memoised ``FunctionInfo.returned_acquisition``; a function reached
        again while its own answer is being worked out (recursion) is taken
        not to acquire."""
        key = id(function)
        if key in self._returns:
            return self._returns[key]
        if key in self._returning:
            return None
        self._returning.add(key)
        try:
            found = function.returned_acquisition()
        finally:
            self._returning.discard(key)
        self._returns[key] = found
        return found

    @cached_property
    def body_nodes(self) -> NodeIndex:
        """The nodes of the module body (functions and classes not entered)."""
        return NodeIndex(walk_scope(self.tree))

    @cached_property
    def tree_nodes(self) -> NodeIndex:
        """Every node of the module, nested scopes included."""
        return NodeIndex(walk(self.tree))

    @property
    def module_scope(self) -> Scope:
        provisional: Scope = _EmptyScope(self)
        return self._guarded("module-scope", lambda: Scope(self, None), provisional)

    @property
    def own_state_types(self) -> dict[str, ResourceType]:
        """``pool`` → type for every ``<app>.state.pool = <typed>`` in the module."""
        return self._guarded("state", self._state_types, {})

    def state_type(self, name: str) -> ResourceType | None:
        """The type of ``app.state.<name>``, typed in this module or anywhere in
        the project."""
        own = self.own_state_types.get(name)
        if own is not None:
            return own
        type_name = self.index.state_type(name)
        return self._type_named(type_name) if type_name else None

    def _state_types(self) -> dict[str, ResourceType]:
        found: dict[str, ResourceType] = {}
        for scope in self._all_scopes():
            for target, value in scope.attribute_assignments():
                parts = target.split(".")
                if len(parts) >= 3 and parts[-2] in _STATE_ATTRIBUTES:
                    typed = scope.type_of(value, with_state=False)
                    if typed is not None:
                        found.setdefault(parts[-1], typed)
            for key, value in scope.item_assignments:
                typed = scope.type_of(value, with_state=False)
                if typed is not None:
                    found.setdefault(key, typed)
        return found

    @property
    def global_types(self) -> dict[str, ResourceType]:
        """Module globals: assigned at module level or through ``global``."""
        return self._guarded("globals", self._global_types, {})

    def _global_types(self) -> dict[str, ResourceType]:
        found: dict[str, ResourceType] = {}
        for name, binding in self.module_scope.bindings.items():
            found[name] = binding.type
        for name, annotation in self._module_annotations.items():
            typed = self.annotation_type(annotation)
            if typed is not None:
                found.setdefault(name, typed)
        for function in self.functions:
            if id(function.node) not in self._declares_global:
                continue
            scope = Scope(self, function)
            for name in scope.global_assignments:
                assigned = scope.bindings.get(name)
                if assigned is not None:
                    found.setdefault(name, assigned.type)
        return found

    # -- project classes --------------------------------------------------

    def project_class(self, dotted: str) -> str | None:
        """The qualified name of the project class ``dotted`` names: one of
        this module, or one another module of the project defines."""
        definition = self.definitions.get(dotted)
        if isinstance(definition, ClassInfo):
            return f"{self.module_name}.{dotted}" if self.module_name else dotted
        symbol = self.imported_symbol(dotted)
        if symbol is not None and symbol.kind is SymbolKind.CLASS:
            return self.imports.resolve(dotted)
        return None

    def own_class(self, qualified: str) -> ClassInfo | None:
        """The class of this module a qualified class name denotes."""
        prefix = f"{self.module_name}." if self.module_name else ""
        if not qualified.startswith(prefix):
            return None
        definition = self.definitions.get(qualified[len(prefix) :])
        return definition if isinstance(definition, ClassInfo) else None

    def method(self, qualified_class: str, name: str) -> FunctionInfo | Symbol | None:
        """A method of a project class: its definition when the class is this
        module's, else what the class's module tells of it."""
        cls = self.own_class(qualified_class)
        if cls is not None:
            return cls.methods.get(name)
        return self.index.symbol(f"{qualified_class}.{name}")

    def class_attribute_instances(self, cls: ClassInfo) -> dict[str, str]:
        """``self.<attribute>`` → project class, from class annotations and
        assignments in any method of the class."""
        return self._guarded(f"class-instances:{id(cls)}", lambda: self._class_instances(cls), {})

    def _class_instances(self, cls: ClassInfo) -> dict[str, str]:
        return _self_attributes(cls, self.annotated_class, lambda scope, v: scope.instance_of(v))

    def annotated_class(self, annotation: cst.BaseExpression) -> str | None:
        """The project class an annotation names (through Optional, unions,
        strings and aliases)."""
        for candidate in self._annotation_candidates(annotation, depth=0):
            name = dotted_name(candidate)
            if name is not None:
                found = self.project_class(name)
                if found is not None:
                    return found
        return None

    def class_attribute_types(self, cls: ClassInfo) -> dict[str, ResourceType]:
        """``self.<attribute>`` → type, from class annotations and assignments in
        any method of the class."""
        return self._guarded(f"class:{id(cls)}", lambda: self._class_types(cls), {})

    def _class_types(self, cls: ClassInfo) -> dict[str, ResourceType]:
        return _self_attributes(cls, self.annotation_type, lambda scope, v: scope.type_of(v))

    def _all_scopes(self) -> Iterator[Scope]:
        yield self.module_scope
        for function in self.functions:
            yield function.scope


class NodeIndex:
    """The nodes of a walk (parents first, in source order), and those of
    given types on demand.

    Syntax only, so computed once per tree: a function's body
    (``FunctionInfo.body_nodes``) is read by each ``Scope`` built over it,
    the whole module (``ModuleInfo.tree_nodes``) by several analyses that
    each walked it.
    """

    __slots__ = ("_by_type", "_positions", "nodes")

    def __init__(self, nodes: Iterable[cst.CSTNode]) -> None:
        self.nodes: list[cst.CSTNode] = list(nodes)
        self._by_type: dict[tuple[type, ...], list[cst.CSTNode]] = {}
        self._positions: dict[type, list[int]] | None = None

    def of_type(self, *types: type) -> list[cst.CSTNode]:
        """The nodes of exactly these libcst types, in order (shared: not to
        be modified)."""
        found = self._by_type.get(types)
        if found is None:
            positions = self._positions_by_type()
            chosen = [positions[t] for t in set(types) if t in positions]
            indices = chosen[0] if len(chosen) == 1 else sorted(i for p in chosen for i in p)
            nodes = self.nodes
            found = [nodes[i] for i in indices]
            self._by_type[types] = found
        return found

    def _positions_by_type(self) -> dict[type, list[int]]:
        """Where the nodes of each type are: one pass over the nodes, then
        each query costs what it finds, not the size of the tree."""
        if self._positions is None:
            positions: dict[type, list[int]] = {}
            for index, node in enumerate(self.nodes):
                positions.setdefault(type(node), []).append(index)
            self._positions = positions
        return self._positions


class Scope:
    """What the names of one function body (or the module body) hold.

    Flow-insensitive: a name assigned a typed value anywhere in the scope has
    that type everywhere in it. Whether it is *held* at a given point is the
    flow analysis' question, not this one's.
    """

    def __init__(self, module: ModuleInfo, function: FunctionInfo | None) -> None:
        self.module = module
        self.function = function
        self.bindings: dict[str, Binding] = {}
        self.local_names: set[str] = set()
        self.global_assignments: set[str] = set()
        self._declared_global: set[str] = set()
        self._attribute_assignments: list[tuple[str, cst.BaseExpression]] = []
        self.item_assignments: list[tuple[str, cst.BaseExpression]] = []
        """``app["pool"] = ...``: application state kept as an item (``state_item``)."""
        self._produced: dict[int, Produced | None] = {}
        self.instances: dict[str, str] = {}
        """Names bound to an instance of a project class → its qualified name."""
        self._body_nodes = function.body_nodes if function is not None else module.body_nodes
        self.nodes: list[cst.CSTNode] = self._body_nodes.nodes
        """Every node of the scope, parents first (nested scopes not entered)."""
        if function is not None:
            self._bind_parameters(function)
        self._bind_body()

    # -- building ---------------------------------------------------------

    @property
    def body(self) -> cst.CSTNode:
        return self.function.node.body if self.function is not None else self.module.tree

    def _bind_parameters(self, function: FunctionInfo) -> None:
        module = self.module
        for param in _all_params(function.node.params):
            name = param.name.value
            # A parameter shadows the names of enclosing scopes and globals,
            # typed or not: an unannotated one is unknown, not the global.
            self.local_names.add(name)
            annotation = param.annotation.annotation if param.annotation else None
            typed = module.annotation_type(annotation) if annotation is not None else None
            if typed is None and annotation is not None:
                instance = module.annotated_class(annotation)
                if instance is not None:
                    self.instances[name] = instance
            provider = None
            if annotation is not None:
                provider = module.annotation_provider(annotation)
            if param.default is not None:
                provider = provider or module._dependency_target(param.default)
            if provider is not None:
                provided = module.function_named(provider)
                if typed is None and provided is not None:
                    # Guarded: a provider may depend on itself (``db=Depends(get_db)``
                    # in ``get_db``), and its scope is what is being built.
                    typed = module._guarded(
                        f"provides:{id(provided)}",
                        partial(_provided_type, module, provided),
                        None,
                    )
                if typed is None:
                    typed = module.provided_type(provider)
                if typed is not None:
                    self.bindings[name] = Binding(name, typed, Origin.INJECTED, param)
                continue
            if typed is not None:
                self.bindings[name] = Binding(name, typed, Origin.PARAMETER, param)

    def of_type(self, *types: type) -> list[cst.CSTNode]:
        """The scope's nodes of exactly these libcst types, in order."""
        return self._body_nodes.of_type(*types)

    def _bind_body(self) -> None:
        for node in self.of_type(
            cst.Assign, cst.AnnAssign, cst.NamedExpr, cst.WithItem, cst.Global
        ):
            if isinstance(node, cst.Assign):
                for target in node.targets:
                    self._bind_target(target.target, node.value)
            elif isinstance(node, cst.AnnAssign):
                if node.value is not None:
                    self._bind_target(node.target, node.value)
                if isinstance(node.target, cst.Name) and node.target.value not in self.bindings:
                    typed = self.module.annotation_type(node.annotation.annotation)
                    if typed is not None:
                        self.bindings[node.target.value] = Binding(
                            node.target.value, typed, Origin.PARAMETER, node
                        )
            elif isinstance(node, cst.NamedExpr):
                self._bind_target(node.target, node.value)
            elif isinstance(node, cst.WithItem):
                if node.asname is not None and isinstance(node.asname.name, cst.Name):
                    typed = self.entered_type(node.item)
                    if typed is not None:
                        name = node.asname.name.value
                        self.bindings.setdefault(name, Binding(name, typed, Origin.ENTERED, node))
            elif isinstance(node, cst.Global):
                self._declared_global.update(n.name.value for n in node.names)

    def _bind_target(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        if isinstance(target, (cst.Attribute, cst.Subscript)):
            name = dotted_name(target)
            if name is not None:
                self._attribute_assignments.append((name, value))
            key = state_item(target)
            if key is not None:
                self.item_assignments.append((key, value))
            return
        if isinstance(target, cst.Tuple | cst.List):
            self._bind_elements(target, value)
            return
        if not isinstance(target, cst.Name):
            return
        name = target.value
        if name in self._declared_global:
            self.global_assignments.add(name)
        else:
            self.local_names.add(name)
        if name in self.bindings:
            return
        instance = self.instance_of(value)
        if instance is not None:
            self.instances.setdefault(name, instance)
        produced = self.produced(value)
        if produced is not None and produced.element is not None:
            return  # the name holds a tuple
        if produced is not None and produced.type.kind.is_resource and produced.complete:
            self.bindings[name] = Binding(name, produced.type, Origin.ACQUIRED, produced.expression)
            return
        typed = self.type_of(value)
        if typed is not None:
            origin = Origin.ALIAS if isinstance(value, (cst.Name, cst.Attribute)) else Origin.OUTER
            self.bindings[name] = Binding(name, typed, origin, value)

    def _bind_elements(self, target: cst.Tuple | cst.List, value: cst.BaseExpression) -> None:
        """``conn, cur = open_db()``: each name is local; the one at the
        position a project function returns its resource in acquires it."""
        produced = self.produced(value)
        for position, element in enumerate(target.elements):
            for name in assigned_names(element.value):
                if name in self._declared_global:
                    self.global_assignments.add(name)
                    continue
                self.local_names.add(name)
                if (
                    produced is not None
                    and produced.element == position
                    and produced.complete
                    and isinstance(element.value, cst.Name)
                    and name not in self.bindings
                ):
                    self.bindings[name] = Binding(
                        name, produced.type, Origin.ACQUIRED, produced.expression
                    )

    def attribute_assignments(self) -> list[tuple[str, cst.BaseExpression]]:
        """``(dotted target, value)`` for assignments to attributes and items."""
        return self._attribute_assignments

    # -- queries ----------------------------------------------------------

    def binding(self, name: str) -> Binding | None:
        return self.bindings.get(name)

    def lookup(self, dotted: str, *, with_state: bool = True) -> ResourceType | None:
        """The type of a dotted name as seen from this scope."""
        head, _, rest = dotted.partition(".")
        if not rest:
            binding = self.bindings.get(head)
            if binding is not None:
                return binding.type
            if head in self.local_names:
                return None
            outer = self.function.parent if self.function is not None else None
            while outer is not None:
                scope = outer.scope
                binding = scope.bindings.get(head)
                if binding is not None:
                    return binding.type
                if head in scope.local_names:
                    return None
                outer = outer.parent
            if self.function is not None:
                found = self.module.global_types.get(head)
                if found is not None:
                    return found
            return self.module.imported_type(head)
        function = self.function
        while function is not None and function.parent is not None:
            function = function.parent
        if (
            function is not None
            and function.cls is not None
            and head == function.self_name
            and "." not in rest
        ):
            return self.module.class_attribute_types(function.cls).get(rest)
        parts = dotted.split(".")
        if with_state and len(parts) >= 3 and parts[-2] in _STATE_ATTRIBUTES:
            return self.module.state_type(parts[-1])
        if head not in self.bindings and head not in self.local_names:
            return self.module.imported_type(dotted)
        return None

    def instance_of(self, expr: cst.BaseExpression) -> str | None:
        """The project class whose instance an expression evaluates to, if the
        code tells: ``Database(dsn)``, a name bound to one here, in an
        enclosing function or at module level (also in another module), a
        parameter annotated with the class, ``self.db``."""
        if isinstance(expr, cst.Call):
            callee = dotted_name(expr.func)
            return self.module.project_class(callee) if callee is not None else None
        if isinstance(expr, cst.Name):
            name = expr.value
            scope: Scope | None = self
            function = self.function
            while scope is not None:
                found = scope.instances.get(name)
                if found is not None:
                    return found
                if name in scope.local_names or name in scope.bindings:
                    return None
                if function is None:
                    break
                function = function.parent
                scope = function.scope if function is not None else self.module.module_scope
            symbol = self.module.imported_symbol(name)
            if symbol is not None and symbol.kind is SymbolKind.INSTANCE:
                return symbol.type_name
            return None
        if isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name):
            outer = self.function
            while outer is not None and outer.parent is not None:
                outer = outer.parent
            if outer is not None and outer.cls is not None and expr.value.value == outer.self_name:
                return self.module.class_attribute_instances(outer.cls).get(expr.attr.value)
        return None

    def method_called(self, func: cst.BaseExpression) -> FunctionInfo | Symbol | None:
        """The project method a callee names (``db.acquire`` on an instance of
        a project class), as its definition or its summary."""
        if not isinstance(func, cst.Attribute):
            return None
        cls = self.instance_of(func.value)
        return self.module.method(cls, func.attr.value) if cls is not None else None

    def _produced_by_a_method(
        self, func: cst.Attribute, call: cst.Call, expr: cst.BaseExpression, awaited: bool
    ) -> Produced | None:
        """``await db.acquire()`` where ``Database.acquire`` returns what it
        acquires: the project's method is an acquisition."""
        method = self.method_called(func)
        spelled = dotted_name(func) or func.attr.value
        if isinstance(method, FunctionInfo):
            returned = self.module.returned_acquisition(method)
            if returned is None:
                return None
            complete = awaited or not method.is_async
            element = method.returned_element()
            return Produced(
                returned, expr, call, complete, spelled, element=element, via_project=True
            )
        if isinstance(method, Symbol) and method.kind is SymbolKind.ACQUIRER and method.type_name:
            acquired = self.module._type_named(method.type_name)
            if acquired is None:
                return None
            complete = awaited or not method.awaited
            return Produced(
                acquired, expr, call, complete, spelled, element=method.element, via_project=True
            )
        return None

    def type_of(self, expr: cst.BaseExpression, *, with_state: bool = True) -> ResourceType | None:
        """The type of the value an expression evaluates to, if the model knows it."""
        if isinstance(expr, (cst.Name, cst.Attribute)):
            name = dotted_name(expr)
            return self.lookup(name, with_state=with_state) if name is not None else None
        produced = self.produced(expr)
        if (
            produced is not None
            and produced.element is None
            and (
                produced.complete
                or not produced.type.kind.is_resource
                # A registry is one whether or not its factory is bound yet.
                or produced.type.is_registry
            )
        ):
            return produced.type
        if isinstance(expr, cst.IfExp):
            return self.type_of(expr.body) or self.type_of(expr.orelse)
        if with_state and isinstance(expr, cst.Subscript):
            key = state_item(expr)
            return self.module.state_type(key) if key is not None else None
        return None

    def produced(self, expr: cst.BaseExpression) -> Produced | None:
        """What a call (possibly awaited) produces, if the model knows."""
        key = id(expr)
        if key in self._produced:
            return self._produced[key]
        found = self._produce(expr)
        if self.module.settled:
            self._produced[key] = found
        return found

    def _produce(self, expr: cst.BaseExpression) -> Produced | None:
        inner, awaited = unwrap_await(expr)
        if not isinstance(inner, cst.Call):
            return None
        func = inner.func
        callee = dotted_name(func)
        if callee is not None:
            wrapped = self._through_a_wrapper(callee, inner, expr, awaited)
            if wrapped is not None:
                return wrapped
            found = self._produced_by_name(callee, inner, expr, awaited)
            if found is not None:
                return found
        elif isinstance(func, cst.Call):
            # ``sessionmaker(bind=engine)()``: a factory made and called at once.
            factory = self.type_of(func)
            if factory is not None and factory.calling_produces is not None:
                complete = not self._unbound_factory(func) and not self._borrowing_factory(func)
                made = self.module.model.type(factory.calling_produces)
                spelled = f"{dotted_name(func.func) or 'factory'}(...)()"
                return Produced(made, expr, inner, complete, spelled)
        if isinstance(func, cst.Attribute):
            receiver = self.type_of(func.value)
            if receiver is None:
                return self._produced_by_a_method(func, inner, expr, awaited)
            if receiver is not None:
                method = receiver.method(func.attr.value)
                if method is not None:
                    complete = not method.context_manager_only and (
                        awaited or method.awaited is not True
                    )
                    return Produced(
                        self.module.model.type(method.produces),
                        expr,
                        inner,
                        complete,
                        callee or func.attr.value,
                        method,
                    )
        elif callee is None:
            return None
        return None

    def _through_a_wrapper(
        self, callee: str, call: cst.Call, expr: cst.BaseExpression, awaited: bool
    ) -> Produced | None:
        """``await asyncio.wait_for(pool.acquire(), 5)``: what the awaitable it
        is given produces, once awaited."""
        position = AWAITABLE_WRAPPERS.get(self.module.qualify(callee) or "")
        if position is None or len(call.args) <= position:
            return None
        awaitable = call.args[position].value
        produced = self.produced(cst.Await(awaitable) if awaited else awaitable)
        if produced is None:
            return None
        return Produced(
            produced.type, expr, produced.call, produced.complete, produced.callee, produced.method
        )

    def _produced_by_name(
        self, callee: str, call: cst.Call, expr: cst.BaseExpression, awaited: bool
    ) -> Produced | None:
        module = self.module
        model = module.model
        qualified = module.qualify(callee)
        if qualified is not None:
            constructor = model.constructor(qualified)
            if constructor is not None:
                complete = (
                    not constructor.context_manager_only
                    and (awaited or constructor.awaited is not True)
                    and self._bound_to_a_pool(call, constructor.bound_by)
                    and not self._from_an_unbound_factory(call)
                    and not _serverless_url(call)
                )
                return Produced(model.type(constructor.produces), expr, call, complete, callee)
        # Calling a factory: ``SessionLocal()``.
        receiver = self.lookup(callee)
        if receiver is not None and receiver.calling_produces is not None:
            complete = not self._unbound_factory(call.func) and not self._borrowing_factory(
                call.func
            )
            return Produced(model.type(receiver.calling_produces), expr, call, complete, callee)
        # A function of another module of the project that acquires.
        symbol = module.imported_symbol(callee)
        if symbol is not None and symbol.kind is SymbolKind.ACQUIRER and symbol.type_name:
            acquired = module._type_named(symbol.type_name)
            if acquired is not None:
                complete = awaited or not symbol.awaited
                return Produced(
                    acquired,
                    expr,
                    call,
                    complete,
                    callee,
                    element=symbol.element,
                    via_project=True,
                    mixed=symbol.mixed,
                )
        # A function of this module that returns what it acquires.
        function = module.function_named(callee)
        if function is not None:
            returned = module.returned_acquisition(function)
            if returned is not None:
                complete = awaited or not function.is_async
                element = function.returned_element()
                return Produced(
                    returned,
                    expr,
                    call,
                    complete,
                    callee,
                    element=element,
                    via_project=True,
                    mixed=function.returns_something_else(),
                )
        return None

    def local_binding(self, name: str) -> Binding | None:
        """The binding of a name in this function or a function enclosing it
        (not the module's: a module's ``SessionLocal = sessionmaker()`` is
        usually given its bind later, by ``configure(bind=...)``)."""
        function = self.function
        scope: Scope = self
        while function is not None:
            binding = scope.bindings.get(name)
            if binding is not None:
                return binding
            if name in scope.local_names:
                return None
            function = function.parent
            if function is not None:
                scope = function.scope
        return None

    def _bound_to_a_pool(self, call: cst.Call, bound_by: tuple[str, ...]) -> bool:
        """Whether the value gets connections of its own: it is given a
        database (see ``_bound``), and that database is not a connection
        someone else holds. ``Session(conn)`` runs on ``conn`` and never checks
        anything out; whoever acquired ``conn`` releases it."""
        if not _bound(call, bound_by):
            return False
        binds = [
            arg.value
            for index, arg in enumerate(call.args)
            if not arg.star
            and (arg.keyword.value if arg.keyword is not None else str(index)) in bound_by
        ]
        return not binds or any(not self._is_a_connection(bind) for bind in binds)

    def _from_an_unbound_factory(self, call: cst.Call) -> bool:
        """``scoped_session(sessionmaker())``: a registry of sessions that a
        factory without a bind makes, which hold nothing (as ``Session()``)."""
        for index, arg in enumerate(call.args):
            named = arg.keyword.value if arg.keyword is not None else str(index)
            if named in ("0", "session_factory"):
                return self._unbound_factory(arg.value)
        return False

    def _unbound_factory(self, expr: cst.BaseExpression) -> bool:
        """Whether ``expr`` is (or names) a session factory made without a
        bind: ``sessionmaker()``, ``maker`` after ``maker = sessionmaker()`` in
        the same function."""
        if isinstance(expr, cst.Name):
            # Only a factory of this function: a module's ``SessionLocal =
            # sessionmaker()`` is usually given its bind later, by
            # ``SessionLocal.configure(bind=engine)`` at startup.
            binding = self.local_binding(expr.value)
            if binding is None or not isinstance(binding.node, cst.Call):
                return False
            expr = binding.node
        if not isinstance(expr, cst.Call):
            return False
        callee = dotted_name(expr.func)
        qualified = self.module.qualify(callee) if callee is not None else None
        constructor = self.module.model.constructor(qualified) if qualified else None
        if constructor is None:
            return False
        made = self.module.model.type(constructor.produces)
        return made.kind is Kind.FACTORY and not _bound(expr, _FACTORY_BINDS)

    def _is_a_connection(self, expr: cst.BaseExpression, depth: int = 0) -> bool:
        """Whether a bind is a connection someone else holds, rather than a
        pool-backed engine: by its type where the model knows it, else by
        where it comes from (``bind = op.get_bind()``, ``session.connection()``),
        else by its name (``bind=conn``)."""
        typed = self.type_of(expr)
        if typed is None:
            produced = self.produced(expr)
            typed = produced.type if produced is not None else None
        if typed is not None:
            return typed.kind in _CONNECTIONS
        if depth < 3:
            assigned = self._single_assignment(expr)
            if assigned is not None:
                return self._is_a_connection(assigned, depth + 1)
        callee = dotted_name(expr.func) if isinstance(expr, cst.Call) else None
        if callee is not None:
            qualified = self.module.qualify(callee)
            if qualified in BORROWED_BINDS or callee.rsplit(".", 1)[-1] in CONNECTION_METHODS:
                return True
        return _names_a_connection(expr)

    def _single_assignment(self, expr: cst.BaseExpression) -> cst.BaseExpression | None:
        """The value of the only assignment to a local name, if there is one."""
        if not isinstance(expr, cst.Name) or self.function is None:
            return None
        values = [
            node.value
            for node in self.of_type(cst.Assign)
            if isinstance(node, cst.Assign)
            and any(
                isinstance(target.target, cst.Name) and target.target.value == expr.value
                for target in node.targets
            )
        ]
        return values[0] if len(values) == 1 else None

    def _borrowing_factory(self, expr: cst.BaseExpression) -> bool:
        """A session factory of this function bound to a connection someone
        else holds: ``Maker = sessionmaker(bind=conn)``; its sessions borrow."""
        if isinstance(expr, cst.Name):
            binding = self.local_binding(expr.value)
            if binding is None or not isinstance(binding.node, cst.Call):
                return False
            expr = binding.node
        if not isinstance(expr, cst.Call):
            return False
        binds = [
            arg.value
            for index, arg in enumerate(expr.args)
            if not arg.star
            and (arg.keyword.value if arg.keyword is not None else str(index)) in _FACTORY_BINDS
        ]
        return bool(binds) and all(self._is_a_connection(bind) for bind in binds)

    def entered_type(self, item: cst.BaseExpression) -> ResourceType | None:
        """The type bound by ``with <item> as name``."""
        produced = self.produced(item)
        if produced is not None:
            return produced.type
        inner, _ = unwrap_await(item)
        if isinstance(inner, cst.Call) and isinstance(inner.func, cst.Attribute):
            receiver = self.type_of(inner.func.value)
            if receiver is not None and inner.func.attr.value in receiver.transaction_methods:
                return self.transaction_binds(receiver)
        if isinstance(inner, cst.Call):
            lent = self._lent_by(inner)
            if lent is not None:
                return lent
        return self.type_of(inner)

    def _lent_by(self, call: cst.Call) -> ResourceType | None:
        """``with session_scope() as session``: what a context-manager
        generator of the project yields (this module's, or another's summary)."""
        callee = dotted_name(call.func)
        if callee is None:
            return None
        module = self.module
        provider = module.function_named(callee)
        if provider is not None:
            if not (provider.is_generator and provider.is_context_manager):
                return None
            return module._guarded(f"lends:{id(provider)}", provider.yielded_type, None)
        symbol = module.imported_symbol(callee)
        if symbol is not None and symbol.kind is SymbolKind.PROVIDER and symbol.type_name:
            return module._type_named(symbol.type_name)
        return None

    def transaction_binds(self, receiver: ResourceType) -> ResourceType | None:
        """What ``with receiver.begin() as x`` binds to ``x``."""
        model = self.module.model
        if receiver.kind is Kind.FACTORY and receiver.calling_produces:
            return model.type(receiver.calling_produces)
        if receiver.kind is Kind.POOL:
            connect = receiver.method("connect")
            return model.type(connect.produces) if connect is not None else None
        return None

    def transaction_of(self, expr: cst.BaseExpression) -> ResourceType | None:
        """The type whose transaction method ``expr`` calls, if it opens one."""
        inner, _ = unwrap_await(expr)
        if not isinstance(inner, cst.Call):
            return None
        if isinstance(inner.func, cst.Attribute):
            receiver = self.type_of(inner.func.value)
            if receiver is not None and inner.func.attr.value in receiver.transaction_methods:
                return receiver
        produced = self.produced(inner)
        if produced is not None and produced.type.kind is Kind.TRANSACTION:
            return produced.type
        return None


class _EmptyScope(Scope):
    """Stands for the module scope while it is being built."""

    def __init__(self, module: ModuleInfo) -> None:
        self.module = module
        self.function = None
        self.bindings = {}
        self.local_names = set()
        self.global_assignments = set()
        self._declared_global = set()
        self._attribute_assignments = []
        self._produced = {}
        self.instances = {}


def _self_attributes(
    cls: ClassInfo,
    of_annotation: Callable[[cst.BaseExpression], _T | None],
    of_value: Callable[[Scope, cst.BaseExpression], _T | None],
) -> dict[str, _T]:
    """``self.<attribute>`` → what ``of_annotation`` makes of its class
    annotation, else what ``of_value`` makes of the first value a method of
    the class assigns to it."""
    found: dict[str, _T] = {}
    for name, annotation in cls.annotations.items():
        known = of_annotation(annotation)
        if known is not None:
            found[name] = known
    for method in cls.methods.values():
        self_name = method.self_name
        if self_name is None:
            continue
        # One scope per method: while results are provisional a scope is
        # rebuilt on every read of ``method.scope``.
        scope = method.scope
        for target, value in scope.attribute_assignments():
            head, _, attribute = target.partition(".")
            if head == self_name and attribute and "." not in attribute:
                known = of_value(scope, value)
                if known is not None:
                    found.setdefault(attribute, known)
    return found


def state_item(expr: cst.BaseExpression) -> str | None:
    """The state name of ``<app>["pool"]`` or ``<app>[pool_key]`` (an
    ``AppKey`` kept in a name): ``pool`` and ``pool_key``. The mapping must
    be an application's (its name is or ends with ``app``, or is
    ``config_dict``)."""
    if not isinstance(expr, cst.Subscript) or len(expr.slice) != 1:
        return None
    element = expr.slice[0].slice
    if not isinstance(element, cst.Index):
        return None
    owner = last_name(expr.value)
    if not (owner.endswith("app") or owner in APPLICATION_MAPPINGS):
        return None
    key = element.value
    if isinstance(key, cst.Name):
        return key.value
    text = string_value(key)
    return text if text and text.isidentifier() else None


def _statements(body: object) -> Iterator[cst.CSTNode]:
    """Statements of a body, descending into compound statements but not into
    nested function or class bodies (those are yielded as nodes)."""
    stack: list[object] = [body]
    while stack:
        current = stack.pop()
        if isinstance(current, (list, tuple)):
            stack.extend(reversed(current))
            continue
        if isinstance(current, cst.Module):
            stack.append(current.body)
        elif isinstance(current, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
            stack.extend(reversed(current.body))
        elif isinstance(current, (cst.IndentedBlock,)):
            stack.append(current.body)
        elif isinstance(current, (cst.FunctionDef, cst.ClassDef)):
            yield current
        elif isinstance(current, cst.BaseCompoundStatement):
            stack.extend(reversed(list(_compound_bodies(current))))
        elif isinstance(current, cst.CSTNode):
            yield current


def _compound_bodies(node: cst.BaseCompoundStatement) -> Iterator[object]:
    for name in ("body", "handlers", "orelse", "finalbody", "cases"):
        value = getattr(node, name, None)
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            for item in value:
                yield item.body if hasattr(item, "body") else item
        elif isinstance(value, (cst.Else, cst.Finally)):
            yield value.body
        elif isinstance(value, cst.If):
            yield value
        else:
            yield value


_FACTORY_BINDS = ("0", "bind", "binds")

_CONNECTIONS = frozenset({Kind.CONNECTION, Kind.POOLED_CONNECTION, Kind.ENGINE_CONNECTION})


def _names_a_connection(expr: cst.BaseExpression) -> bool:
    """``conn``, ``self.connection``, ``bind``: a name the code gives a
    connection (and not an engine)."""
    name = dotted_name(expr.func if isinstance(expr, cst.Call) else expr)
    if name is None:
        return False
    last = name.rsplit(".", 1)[-1].lower()
    return "engine" not in last and any(hint in last for hint in CONNECTION_BIND_NAMES)


def _serverless_url(call: cst.Call) -> bool:
    """Whether the call is given a SQLite URL written in the code
    (``create_engine("sqlite:///app.db")``, an f-string or a ``.format`` of
    one): a file or memory database holds no server connection slot."""
    url = keyword_argument(call, "url")
    if url is None:
        url = next((arg for arg in call.args if arg.keyword is None and not arg.star), None)
    if url is None:
        return False
    text = url.value
    if (
        isinstance(text, cst.Call)
        and isinstance(text.func, cst.Attribute)
        and text.func.attr.value == "format"
    ):
        text = text.func.value
    if isinstance(text, cst.FormattedString):
        first = text.parts[0] if text.parts else None
        literal = first.value if isinstance(first, cst.FormattedStringText) else ""
    else:
        literal = string_value(text) or ""
    return literal.lower().startswith(SERVERLESS_URL_SCHEMES)


def _bound(call: cst.Call, bound_by: tuple[str, ...]) -> bool:
    """Whether the call passes one of the arguments that give the value a
    database (always, when the constructor names none)."""
    if not bound_by:
        return True
    for index, arg in enumerate(call.args):
        if arg.star:
            return True
        if arg.keyword is None and str(index) in bound_by:
            return True
        if arg.keyword is not None and arg.keyword.value in bound_by:
            return True
    return False


def _all_params(params: cst.Parameters) -> Iterator[cst.Param]:
    yield from params.posonly_params
    yield from params.params
    if isinstance(params.star_arg, cst.Param):
        yield params.star_arg
    yield from params.kwonly_params
    if params.star_kwarg is not None:
        yield params.star_kwarg


def assignment_names(node: cst.CSTNode) -> list[str]:
    """Names bound by an assignment statement or walrus."""
    if isinstance(node, cst.Assign):
        return [name for target in node.targets for name in assigned_names(target.target)]
    if isinstance(node, (cst.AnnAssign, cst.AugAssign, cst.NamedExpr)):
        return list(assigned_names(node.target))
    return []


def _acquired_value(scope: Scope, value: cst.BaseExpression) -> ResourceType | None:
    """The type of what ``value`` acquires, or of the acquisition a name of
    the scope holds."""
    produced = scope.produced(value)
    if produced is not None and produced.acquires and produced.element is None:
        return produced.type
    if isinstance(value, cst.Name):
        binding = scope.binding(value.value)
        if binding is not None and binding.origin is Origin.ACQUIRED:
            return binding.type
    return None


def _provided_type(module: ModuleInfo, provider: FunctionInfo) -> ResourceType | None:
    """What a dependency provider yields, or acquires and returns."""
    return provider.yielded_type() or module.returned_acquisition(provider)
