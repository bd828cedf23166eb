"""The language server: the Language Server Protocol over standard input and
output, with pygls and lsprotocol.

- **Diagnostics** are pushed (``textDocument/publishDiagnostics``, with the
  document's version) on open and save at once, and on change once the typing
  has paused for ``DEBOUNCE`` seconds. A result is published only if no newer
  version arrived meanwhile; a check still waiting for the analysis thread
  when a newer version arrives is dropped.
- **Code actions**: each finding's fix under the cursor (safe ones preferred;
  unsafe ones say so in their title), ``# noqa: CODE`` for each finding under
  the cursor, and ``source.fixAll.slotguard`` for the safe fixes of the whole
  file (worked out when the client resolves it, if it can). Every edit is
  computed from the text the client sent, for that version: a client refuses
  an edit for a version it no longer has.
- **Hover** on a finding shows its rule's documentation.

The analysis runs on two threads, so the event loop keeps reading messages
(a cancellation, a newer version): one checks buffers, the other brings a
project's analysis up to date, after which the open buffers are checked
again. Everything slotguard-specific goes through ``checking``.

Errors of the server itself never stop it: they are logged to the client
(``window/logMessage``), and a request that cannot be read gets an error
response.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import JsonRpcContentModified, JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.uris import from_fs_path, to_fs_path

from slotguard import __version__
from slotguard.diagnostic import Applicability, Diagnostic, Related, Span
from slotguard.server.checking import (
    ANALYSIS_ERROR,
    BufferCheck,
    Checker,
    FixOption,
    add_noqa,
    rule_help,
    rule_url,
    text_edits,
)
from slotguard.server.positions import UTF16, Lines, contains, overlaps

DEBOUNCE = 0.25
"""Seconds without a change before an edited buffer is checked."""

SOURCE = "slotguard"
FIX_ALL = f"{types.CodeActionKind.SourceFixAll.value}.{SOURCE}"

_T = TypeVar("_T")


class Obsolete(Exception):
    """A newer version of the document arrived before the check started."""


@dataclass(slots=True)
class _Document:
    """What the server keeps of one open document."""

    uri: str
    path: Path
    timer: asyncio.TimerHandle | None = None
    publishing: asyncio.Task[None] | None = None
    version: int | None = None
    """The version ``check`` is for."""
    check: asyncio.Future[BufferCheck] | None = None
    fixes: dict[tuple[str, int, int, int, int], FixOption | None] = field(default_factory=dict)
    """The fixes worked out for ``check``, by finding."""


class _Protocol(LanguageServerProtocol):
    """pygls' protocol, answering requests it cannot read with an error
    instead of leaving the client waiting for an answer that never comes."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as error:
            if isinstance(data, dict) and "id" in data and "method" in data:
                self._send_response(data["id"], error=error.to_response_error())
            raise


class SlotguardServer(LanguageServer):
    def __init__(self, checker: Checker | None = None) -> None:
        super().__init__(
            SOURCE,
            __version__,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            protocol_cls=_Protocol,
        )
        self.checker = checker or Checker()
        self.checks = ThreadPoolExecutor(1, thread_name_prefix="slotguard-check")
        self.projects = ThreadPoolExecutor(1, thread_name_prefix="slotguard-project")
        self.documents: dict[str, _Document] = {}
        self.refreshing: set[Path] = set()
        self.shutting_down = False
        self.reported: set[str] = set()
        """Configuration problems already shown to the user."""
        features: list[tuple[str, Callable[..., Any], Any]] = [
            (types.TEXT_DOCUMENT_DID_OPEN, self.did_open, None),
            (types.TEXT_DOCUMENT_DID_CHANGE, self.did_change, None),
            (types.TEXT_DOCUMENT_DID_SAVE, self.did_save, types.SaveOptions(include_text=False)),
            (types.TEXT_DOCUMENT_DID_CLOSE, self.did_close, None),
            (
                types.TEXT_DOCUMENT_CODE_ACTION,
                self.code_action,
                types.CodeActionOptions(
                    code_action_kinds=[types.CodeActionKind.QuickFix, FIX_ALL],
                    resolve_provider=True,
                ),
            ),
            (types.CODE_ACTION_RESOLVE, self.resolve_code_action, None),
            (types.TEXT_DOCUMENT_HOVER, self.hover, None),
            (types.SHUTDOWN, self.on_shutdown, None),
            (types.EXIT, self.on_exit, None),
        ]
        for method, handler, options in features:
            self.feature(method, options)(_unbound(handler))

    # -- errors --------------------------------------------------------------------

    def report_server_error(self, error: Exception, source: Any) -> None:
        """Every error of the server goes to the client's log, with its
        traceback; the server goes on."""
        trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        self.log(types.MessageType.Error, f"{type(error).__name__}: {error}\n{trace}".rstrip())

    def log(self, kind: types.MessageType, message: str) -> None:
        self.window_log_message(types.LogMessageParams(type=kind, message=message))

    # -- documents ---------------------------------------------------------------------

    def did_open(self, params: types.DidOpenTextDocumentParams) -> None:
        document = params.text_document
        path = _path_of(document.uri)
        if document.language_id != "python" and path.suffix != ".py":
            return  # a client that sends every file it opens
        self.documents[document.uri] = _Document(document.uri, path)
        self.schedule(document.uri, 0)

    def did_change(self, params: types.DidChangeTextDocumentParams) -> None:
        self.schedule(params.text_document.uri, DEBOUNCE)

    def did_save(self, params: types.DidSaveTextDocumentParams) -> None:
        self.checker.saved()
        self.schedule(params.text_document.uri, 0)

    def did_close(self, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        state = self.documents.pop(uri, None)
        if state is not None:
            _stop(state)
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=[])
        )

    def on_shutdown(self, params: None) -> None:
        self.shutting_down = True
        for state in self.documents.values():
            _stop(state)

    def on_exit(self, params: None) -> None:
        """Leave at once, whatever an analysis thread is doing (it holds
        nothing that must be finished)."""
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(0 if self.shutting_down else 1)

    def text(self, uri: str) -> tuple[str, int | None] | None:
        """The current text and version of an open document."""
        document = self.workspace.text_documents.get(unquote(uri))
        if document is None or uri not in self.documents:
            return None
        return document.source, document.version

    def is_current(self, uri: str, version: int | None) -> bool:
        """Whether ``version`` is the open document's latest (safe to ask
        from the analysis thread: it only reads)."""
        document = self.workspace.text_documents.get(unquote(uri))
        return document is not None and uri in self.documents and document.version == version

    # -- diagnostics ----------------------------------------------------------------

    def schedule(self, uri: str, delay: float) -> None:
        """Check and publish ``uri`` after ``delay`` seconds, instead of any
        check scheduled before."""
        state = self.documents.get(uri)
        if state is None or self.shutting_down:
            return
        if state.timer is not None:
            state.timer.cancel()
        loop = asyncio.get_running_loop()

        def start() -> None:
            state.timer = None
            state.publishing = loop.create_task(self.publish(uri))

        state.timer = loop.call_later(delay, start)

    async def analysis(self, uri: str) -> tuple[BufferCheck, _Document]:
        """The check of the document's current version (shared by everyone
        who asks for that version)."""
        state = self.documents.get(uri)
        current = self.text(uri)
        if state is None or current is None:
            raise Obsolete
        text, version = current
        previous = state.check
        failed = (
            previous is not None
            and previous.done()
            and (previous.cancelled() or previous.exception() is not None)
        )
        if state.check is None or state.version != version or failed:
            state.version = version
            state.fixes = {}
            path = state.path

            def job() -> BufferCheck:
                if not self.is_current(uri, version):
                    raise Obsolete
                return self.checker.check(text, path)

            state.check = asyncio.get_running_loop().run_in_executor(self.checks, job)
        check = await asyncio.shield(state.check)  # one asker's cancellation is not everyone's
        return check, state

    async def publish(self, uri: str) -> None:
        try:
            check, state = await self.analysis(uri)
        except Obsolete:
            return
        except Exception as error:
            self.report_server_error(error, Exception)
            return
        if not self.is_current(uri, state.version) or self.shutting_down:
            return
        lines = Lines(check.text, self.encoding)
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(
                uri=uri,
                diagnostics=[self.lsp_diagnostic(d, lines, check) for d in check.diagnostics],
                version=state.version,
            )
        )
        problem = check.configuration_problem
        if problem is not None and problem not in self.reported:
            self.reported.add(problem)
            self.log(types.MessageType.Error, problem)
            self.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Error, message=problem)
            )
        if not check.project_current:
            self.refresh(check)

    def refresh(self, check: BufferCheck) -> None:
        """Bring the analysis of the buffer's project up to date in the
        background, then check the open buffers again."""
        if check.root in self.refreshing:
            return
        self.refreshing.add(check.root)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.projects, self.checker.refresh, check.path)
        root, started = check.root, loop.time()

        def done(outcome: asyncio.Future[bool]) -> None:
            self.refreshing.discard(root)
            if outcome.cancelled():
                return
            error = outcome.exception()
            if isinstance(error, Exception):
                self.report_server_error(error, Exception)
            elif outcome.result():
                took = loop.time() - started
                self.log(types.MessageType.Info, f"analysed the project {root} in {took:.1f} s")
                for uri, state in self.documents.items():
                    state.check = None  # saw the project as it was
                    self.schedule(uri, 0)

        future.add_done_callback(done)

    @property
    def encoding(self) -> str:
        chosen = self.workspace.position_encoding
        if isinstance(chosen, types.PositionEncodingKind):
            return str(chosen.value)
        return chosen or UTF16

    def lsp_diagnostic(
        self, diagnostic: Diagnostic, lines: Lines, check: BufferCheck
    ) -> types.Diagnostic:
        severity = (
            types.DiagnosticSeverity.Warning
            if diagnostic.severity == "warning"
            else types.DiagnosticSeverity.Error
        )
        fix = diagnostic.fix
        return types.Diagnostic(
            range=_range(lines, diagnostic.span),
            message=diagnostic.message,
            severity=severity,
            code=diagnostic.code,
            code_description=types.CodeDescription(href=rule_url(diagnostic.code, diagnostic.name)),
            source=SOURCE,
            related_information=[self.related(place, lines, check) for place in diagnostic.related]
            or None,
            data={"fix": fix.applicability.value if fix is not None else None},
        )

    def related(
        self, place: Related, lines: Lines, check: BufferCheck
    ) -> types.DiagnosticRelatedInformation:
        path = check.place(place)
        if path != check.path:
            lines = Lines(_read(path), self.encoding)
        return types.DiagnosticRelatedInformation(
            location=types.Location(uri=_uri_of(path), range=_range(lines, place.span)),
            message=place.message,
        )

    # -- code actions ---------------------------------------------------------------

    async def code_action(self, params: types.CodeActionParams) -> list[types.CodeAction] | None:
        uri = params.text_document.uri
        try:
            check, state = await self.analysis(uri)
        except Obsolete:
            return None
        if not self.is_current(uri, state.version):
            raise JsonRpcContentModified()
        lines = Lines(check.text, self.encoding)
        start = lines.place((params.range.start.line, params.range.start.character))
        end = lines.place((params.range.end.line, params.range.end.character))
        here = [d for d in check.diagnostics if overlaps(d.span, start, end)]
        wanted = params.context.only
        actions: list[types.CodeAction] = []
        if _wants(wanted, types.CodeActionKind.QuickFix.value):
            for diagnostic in here:
                try:
                    option = await self.fix_of(check, state, diagnostic)
                except Obsolete:
                    raise JsonRpcContentModified() from None
                if option is not None:
                    actions.append(self.fix_action(uri, state, check, lines, option))
            for diagnostic in here:
                action = self.noqa_action(uri, state, check, lines, diagnostic)
                if action is not None:
                    actions.append(action)
        safe = [d for d in check.diagnostics if d.fix and d.fix.applicability is Applicability.SAFE]
        if safe and _wants(wanted, FIX_ALL):
            action = types.CodeAction(
                title="slotguard: apply all safe fixes",
                kind=FIX_ALL,
                data={"uri": uri, "version": state.version},
            )
            if not self.resolves_edits():
                action = await self.resolve_code_action(action)
            actions.append(action)
        return actions

    async def fix_of(
        self, check: BufferCheck, state: _Document, diagnostic: Diagnostic
    ) -> FixOption | None:
        if diagnostic.fix is None:
            return None
        key = (diagnostic.code, *_span_key(diagnostic))
        if key not in state.fixes:
            uri, version = state.uri, state.version

            def job() -> FixOption | None:
                if not self.is_current(uri, version):
                    raise Obsolete
                return self.checker.fix(check, diagnostic)

            state.fixes[key] = await self.run(job)
        return state.fixes[key]

    def fix_action(
        self, uri: str, state: _Document, check: BufferCheck, lines: Lines, option: FixOption
    ) -> types.CodeAction:
        diagnostic = option.diagnostic
        unsafe = option.applicability is Applicability.UNSAFE
        title = f"slotguard ({diagnostic.code}): {option.description}"
        return types.CodeAction(
            title=f"{title} (unsafe fix)" if unsafe else title,
            kind=types.CodeActionKind.QuickFix,
            diagnostics=[self.lsp_diagnostic(diagnostic, lines, check)],
            is_preferred=not unsafe,
            edit=self.workspace_edit(uri, state.version, lines, check.text, option.text),
        )

    def noqa_action(
        self, uri: str, state: _Document, check: BufferCheck, lines: Lines, diagnostic: Diagnostic
    ) -> types.CodeAction | None:
        if diagnostic.code == ANALYSIS_ERROR:
            return None
        annotated = add_noqa(check.text, [diagnostic])
        if annotated is None:
            return None
        return types.CodeAction(
            title=f"slotguard ({diagnostic.code}): add `# noqa: {diagnostic.code}`",
            kind=types.CodeActionKind.QuickFix,
            diagnostics=[self.lsp_diagnostic(diagnostic, lines, check)],
            edit=self.workspace_edit(uri, state.version, lines, check.text, annotated),
        )

    async def resolve_code_action(self, action: types.CodeAction) -> types.CodeAction:
        data = action.data if isinstance(action.data, dict) else {}
        uri = data.get("uri")
        if action.kind != FIX_ALL or not isinstance(uri, str):
            return action
        try:
            check, state = await self.analysis(uri)
        except Obsolete:
            raise JsonRpcContentModified() from None
        if state.version != data.get("version"):
            raise JsonRpcContentModified()
        fixed = await self.run(self.checker.fix_all, check)
        lines = Lines(check.text, self.encoding)
        new = fixed or check.text
        action.edit = self.workspace_edit(uri, state.version, lines, check.text, new)
        return action

    def resolves_edits(self) -> bool:
        support = self.client_capabilities.text_document
        code_action = support.code_action if support is not None else None
        resolve = code_action.resolve_support if code_action is not None else None
        return resolve is not None and "edit" in resolve.properties

    def workspace_edit(
        self, uri: str, version: int | None, lines: Lines, old: str, new: str
    ) -> types.WorkspaceEdit:
        edits: list[types.TextEdit] = [
            types.TextEdit(range=_range(lines, edit.span), new_text=edit.content)
            for edit in text_edits(old, new)
        ]
        workspace = self.client_capabilities.workspace
        edit_support = workspace.workspace_edit if workspace is not None else None
        if edit_support is not None and edit_support.document_changes:
            return types.WorkspaceEdit(
                document_changes=[
                    types.TextDocumentEdit(
                        text_document=types.OptionalVersionedTextDocumentIdentifier(
                            uri=uri, version=version
                        ),
                        edits=list(edits),
                    )
                ]
            )
        return types.WorkspaceEdit(changes={uri: edits})

    # -- hover -------------------------------------------------------------------------

    async def hover(self, params: types.HoverParams) -> types.Hover | None:
        try:
            check, _ = await self.analysis(params.text_document.uri)
        except Obsolete:
            return None
        lines = Lines(check.text, self.encoding)
        line, column = lines.place((params.position.line, params.position.character))
        here = [d for d in check.diagnostics if contains(d.span, line, column)]
        if not here:
            return None
        codes = list(dict.fromkeys(d.code for d in here))
        helps = await self.run(lambda: [rule_help(code) for code in codes])
        sections = [
            f"**{help.code} {help.name}** ([rule reference]({help.url}))\n\n{help.documentation}"
            for help in helps
            if help is not None
        ]
        if not sections:
            return None
        return types.Hover(
            contents=types.MarkupContent(
                kind=types.MarkupKind.Markdown, value="\n\n---\n\n".join(sections)
            ),
            range=_range(lines, here[0].span),
        )

    # -- threads ----------------------------------------------------------------------

    async def run(self, function: Callable[..., _T], *args: Any) -> _T:
        """``function(*args)`` on the thread that checks buffers."""
        return await asyncio.get_running_loop().run_in_executor(self.checks, function, *args)


def _unbound(method: Callable[..., Any]) -> Callable[..., Any]:
    """A plain function calling a bound method (pygls marks the functions
    it registers with attributes, which a bound method cannot take)."""
    if asyncio.iscoroutinefunction(method):

        async def handle_async(params: Any) -> Any:
            return await method(params)

        return handle_async

    def handle(params: Any) -> Any:
        return method(params)

    return handle


def _stop(state: _Document) -> None:
    if state.timer is not None:
        state.timer.cancel()
        state.timer = None
    if state.publishing is not None:
        state.publishing.cancel()
        state.publishing = None


def _wants(only: Sequence[str] | None, kind: str) -> bool:
    """Whether a client asking for the kinds ``only`` wants an action of
    ``kind`` (``source.fixAll`` asks for ``source.fixAll.slotguard``)."""
    if only is None:
        return True
    return any(kind == wanted or kind.startswith(f"{wanted}.") for wanted in only)


def _span_key(diagnostic: Diagnostic) -> tuple[int, int, int, int]:
    span = diagnostic.span
    return span.line, span.column, span.end_line, span.end_column


def _range(lines: Lines, span: Span) -> types.Range:
    start, end = lines.range(span)
    return types.Range(
        start=types.Position(line=start[0], character=start[1]),
        end=types.Position(line=end[0], character=end[1]),
    )


def _path_of(uri: str) -> Path:
    """The file behind a URI; an unsaved buffer (``untitled:``) is checked as
    a file of that name in the current directory."""
    path = to_fs_path(uri)
    if path is None or not uri.startswith("file:"):
        name = unquote(uri.rsplit("/", 1)[-1].rsplit(":", 1)[-1]) or "untitled"
        return Path.cwd() / (name if name.endswith(".py") else f"{name}.py")
    return Path(path)


def _uri_of(path: Path) -> str:
    return from_fs_path(str(path)) or path.as_uri()


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def serve() -> int:
    """Serve one client over standard input and output; the exit status."""
    # The parser tries code CPython rejects in a forked child first (see
    # ``slotguard.parse``); the child only parses and leaves, so the threads
    # of this process do not matter to it (Python 3.12 warns about them).
    warnings.filterwarnings("ignore", message=".*multi-threaded.*fork", category=DeprecationWarning)
    server = SlotguardServer()
    server.start_io()
    return 0 if server.shutting_down else 1
