"""``slotguard server`` end to end: a real LSP client (pytest-lsp's, on pygls)
starts the server as editors do (``slotguard server`` over standard input and
output) and talks to it.

The machine is shared and may be slow: every wait is for a condition, with a
generous bound, and nothing here asserts how long anything took."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import server_projects
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.protocol import default_converter
from pytest_lsp import LanguageClient, client_capabilities
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

SERVER = (sys.executable, "-m", "slotguard", "server")
WAIT = 120.0
"""Seconds to wait for something that should take well under one."""


@dataclass
class Session:
    """A client connected to a server over a project, recording every
    ``publishDiagnostics`` with its version."""

    client: LanguageClient
    project: Path
    published: list[types.PublishDiagnosticsParams] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)

    def uri(self, relative: str) -> str:
        return (self.project / relative).as_uri()

    def open(self, relative: str, text: str | None = None) -> str:
        uri = self.uri(relative)
        text = (self.project / relative).read_text() if text is None else text
        self.texts[uri], self.versions[uri] = text, 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)
            )
        )
        return uri

    def replace(self, uri: str, text: str) -> int:
        """Send the whole new text (a full change); returns its version."""
        self.versions[uri] += 1
        self.texts[uri] = text
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=uri, version=self.versions[uri]
                ),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )
        return self.versions[uri]

    def apply(self, edit: types.WorkspaceEdit | None) -> int:
        """Apply a code action's edit as an editor does: to its buffer, then
        tell the server, one incremental change per edit (the last first);
        returns the new version."""
        assert edit is not None
        if edit.document_changes is not None:
            (change,) = edit.document_changes
            assert isinstance(change, types.TextDocumentEdit)
            uri = change.text_document.uri
            assert change.text_document.version == self.versions[uri]
            edits = [e for e in change.edits if isinstance(e, types.TextEdit)]
        else:
            assert edit.changes is not None
            ((uri, edits),) = edit.changes.items()
        ordered = sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character))
        text = self.texts[uri]
        for text_edit in reversed(ordered):
            text = _edited(text, text_edit)
        self.texts[uri] = text
        self.versions[uri] += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=uri, version=self.versions[uri]
                ),
                content_changes=[
                    types.TextDocumentContentChangePartial(range=e.range, text=e.new_text)
                    for e in reversed(ordered)
                ],
            )
        )
        return self.versions[uri]

    async def diagnostics(
        self,
        uri: str,
        holds: Callable[[Sequence[types.Diagnostic]], bool] = lambda found: True,
        *,
        version: int | None = None,
    ) -> list[types.Diagnostic]:
        """The first diagnostics published for ``uri`` (for ``version``, if
        given) that satisfy ``holds``, waiting for them."""

        def match() -> list[types.Diagnostic] | None:
            for params in self.published:
                if params.uri != uri or (version is not None and params.version != version):
                    continue
                if holds(params.diagnostics):
                    return list(params.diagnostics)
            return None

        found: list[types.Diagnostic] = await _until(
            match, f"diagnostics for {uri} (version {version})", self
        )
        return found

    def versions_published(self, uri: str) -> list[int | None]:
        return [params.version for params in self.published if params.uri == uri]


async def _until(
    probe: Callable[[], Any], what: str, session: Session | None = None, timeout: float = WAIT
) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if loop.time() > deadline:
            seen = session.published if session is not None else None
            raise AssertionError(f"no {what} within {timeout} s; published: {seen}")
        await asyncio.sleep(0.05)


def _edited(text: str, edit: types.TextEdit) -> str:
    """``text`` with one edit applied (the test texts are ASCII, so UTF-16
    units are characters)."""
    lines = text.split("\n")

    def offset(position: types.Position) -> int:
        if position.line >= len(lines):
            return len(text)
        return sum(len(line) + 1 for line in lines[: position.line]) + position.character

    return text[: offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end) :]


def _codes(found: Sequence[types.Diagnostic]) -> list[str]:
    return [str(d.code) for d in found]


def _range(found: types.Diagnostic) -> tuple[int, int, int, int]:
    start, end = found.range.start, found.range.end
    return start.line, start.character, end.line, end.character


async def _start(project: Path, capabilities: types.ClientCapabilities) -> Session:
    client = LanguageClient(converter_factory=default_converter)
    session = Session(client, project)

    def publish(ls: LanguageClient, params: types.PublishDiagnosticsParams) -> None:
        ls.diagnostics[params.uri] = params.diagnostics
        session.published.append(params)

    register_lsp_features(
        client, {**DEFAULT_CLIENT_FEATURES, types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS: publish}
    )
    await client.start_io(*SERVER)
    await asyncio.wait_for(
        client.initialize_session(
            types.InitializeParams(
                capabilities=capabilities,
                root_uri=project.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=project.as_uri(), name="service")],
            )
        ),
        WAIT,
    )
    return session


async def _stop(session: Session) -> int | None:
    """Shut the server down as an editor does; its exit status."""
    await asyncio.wait_for(session.client.shutdown_session(), WAIT)
    process = session.client._server
    returncode = process.returncode if process is not None else None
    await session.client.stop()
    return returncode


@pytest_asyncio.fixture
async def session(tmp_path: Path) -> AsyncIterator[Session]:
    """A Neovim 0.11 client on the service project."""
    started = await _start(server_projects.service(tmp_path), client_capabilities("neovim"))
    yield started
    await _stop(started)


@pytest.mark.asyncio
async def test_a_leak_through_the_projects_application_state_is_reported_and_explained(
    session: Session,
) -> None:
    uri = session.open("app/routes.py")
    (finding,) = await session.diagnostics(uri, lambda found: bool(found), version=1)
    assert finding.code == "SG101"
    assert finding.source == "slotguard"
    assert finding.severity == types.DiagnosticSeverity.Error
    assert _range(finding) == server_projects.ROUTES_ACQUIRE
    assert "is never released" in finding.message
    assert finding.code_description is not None
    assert finding.code_description.href.endswith("README.md#sg101-acquire-without-context-manager")
    assert finding.related_information
    assert finding.related_information[0].location.uri == uri

    hover = await session.client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), finding.range.start)
    )
    assert hover is not None
    assert isinstance(hover.contents, types.MarkupContent)
    assert hover.contents.kind == types.MarkupKind.Markdown
    assert hover.contents.value.startswith("**SG101 acquire-without-context-manager**")
    assert "## What it does" in hover.contents.value
    outside = await session.client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(line=0, character=0))
    )
    assert outside is None


@pytest.mark.asyncio
async def test_the_noqa_action_makes_the_finding_disappear(session: Session) -> None:
    uri = session.open("app/routes.py")
    (finding,) = await session.diagnostics(uri, lambda found: bool(found), version=1)
    actions = await session.client.text_document_code_action_async(
        types.CodeActionParams(
            types.TextDocumentIdentifier(uri),
            finding.range,
            types.CodeActionContext(diagnostics=[finding]),
        )
    )
    assert actions is not None
    titles = [action.title for action in actions if isinstance(action, types.CodeAction)]
    # The fix that enters the connection in its with is unsafe, and offered as such.
    assert len(titles) == 2
    assert titles[0].startswith("slotguard (SG101): enter `conn` with `async with")
    assert titles[0].endswith("(unsafe fix)")
    assert titles[1] == "slotguard (SG101): add `# noqa: SG101`"
    action = actions[1]
    assert isinstance(action, types.CodeAction)
    version = session.apply(action.edit)
    assert "acquire()  # noqa: SG101\n" in session.texts[uri]
    assert await session.diagnostics(uri, version=version) == []


@pytest.mark.asyncio
async def test_a_safe_fix_is_offered_and_applying_it_removes_the_finding(
    session: Session,
) -> None:
    uri = session.open("app/lookups.py")
    (finding,) = await session.diagnostics(uri, version=1)
    assert finding.code == "SG201"
    assert _range(finding) == server_projects.LOOKUPS_ACQUIRE
    # The cursor on the acquisition, the client sending no diagnostics.
    cursor = types.Range(start=finding.range.start, end=finding.range.start)
    actions = await session.client.text_document_code_action_async(
        types.CodeActionParams(
            types.TextDocumentIdentifier(uri), cursor, types.CodeActionContext(diagnostics=[])
        )
    )
    assert actions is not None
    by_title = {a.title: a for a in actions if isinstance(a, types.CodeAction)}
    fix = by_title["slotguard (SG201): rewrite as `async with pool.acquire() as conn:`"]
    assert fix.kind == types.CodeActionKind.QuickFix
    assert fix.is_preferred
    assert "slotguard (SG201): add `# noqa: SG201`" in by_title
    assert "slotguard: apply all safe fixes" in by_title
    version = session.apply(fix.edit)
    assert session.texts[uri] == server_projects.LOOKUPS_FIXED
    assert await session.diagnostics(uri, version=version) == []


@pytest.mark.asyncio
async def test_fix_all_on_save_is_resolved_from_the_buffer_not_the_file(
    session: Session,
) -> None:
    text = server_projects.LOOKUPS.replace("return row", "return row\n\n\n") + (
        server_projects.LOOKUPS.split("\n\n\n", 1)[1].replace("find_user", "find_team")
    )
    uri = session.open("app/lookups.py", text)
    assert _codes(await session.diagnostics(uri, version=1)) == ["SG201", "SG201"]
    everywhere = types.Range(
        start=types.Position(line=0, character=0), end=types.Position(line=0, character=0)
    )
    actions = await session.client.text_document_code_action_async(
        types.CodeActionParams(
            types.TextDocumentIdentifier(uri),
            everywhere,
            types.CodeActionContext(diagnostics=[], only=[types.CodeActionKind.SourceFixAll]),
        )
    )
    assert actions is not None
    (action,) = actions
    assert isinstance(action, types.CodeAction)
    assert action.kind == "source.fixAll.slotguard"
    assert action.edit is None  # worked out when resolved
    resolved = await session.client.code_action_resolve_async(action)
    version = session.apply(resolved.edit)
    assert session.texts[uri].count("async with pool.acquire() as conn:") == 2
    assert await session.diagnostics(uri, version=version) == []
    # The file on disk was never touched.
    assert (session.project / "app/lookups.py").read_text() == server_projects.LOOKUPS


@pytest.mark.asyncio
async def test_diagnostics_follow_the_buffer(session: Session) -> None:
    uri = session.open("app/routes.py", server_projects.ROUTES_RELEASED)
    assert await session.diagnostics(uri, version=1) == []
    leaking = session.replace(uri, server_projects.ROUTES)
    (finding,) = await session.diagnostics(uri, lambda found: bool(found), version=leaking)
    assert finding.code == "SG101"
    released = session.replace(uri, server_projects.ROUTES_RELEASED)
    assert await session.diagnostics(uri, version=released) == []
    broken = session.replace(uri, server_projects.ROUTES.replace("router.get(", "router.get(("))
    (error,) = await session.diagnostics(uri, version=broken)
    assert error.code == "SG000"
    assert "syntax error" in error.message
    assert error.range.start.line == 5


@pytest.mark.asyncio
async def test_a_newer_version_makes_older_ones_obsolete(session: Session) -> None:
    uri = session.open("app/routes.py", server_projects.ROUTES_RELEASED)
    await session.diagnostics(uri, version=1)
    for _ in range(5):
        session.replace(uri, server_projects.ROUTES)
    last = session.replace(uri, server_projects.ROUTES_RELEASED)
    assert await session.diagnostics(uri, version=last) == []
    published = session.versions_published(uri)
    # Never a result for a version after one for a newer version.
    assert published == sorted(published, key=lambda version: version or 0)
    session.client.text_document_did_close(
        types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri))
    )
    await _until(lambda: session.versions_published(uri)[-1] is None or None, "cleared")
    assert list(session.published[-1].diagnostics) == []


@pytest.mark.asyncio
async def test_a_fix_that_moves_shutdown_code_is_marked_unsafe(session: Session) -> None:
    path = session.project / "app/startup.py"
    path.write_text(
        (Path(__file__).parents[2] / "fixtures/fixes/sg502/asyncpg_app_state.py").read_text()
    )
    uri = session.open("app/startup.py")
    (finding,) = await session.diagnostics(uri, lambda found: bool(found))
    assert finding.code == "SG502"
    actions = await session.client.text_document_code_action_async(
        types.CodeActionParams(
            types.TextDocumentIdentifier(uri),
            finding.range,
            types.CodeActionContext(diagnostics=[finding]),
        )
    )
    assert actions is not None
    (unsafe,) = [a for a in actions if isinstance(a, types.CodeAction) and a.is_preferred is False]
    assert unsafe.title.endswith("(unsafe fix)")
    assert unsafe.title.startswith("slotguard (SG502): ")


@pytest.mark.asyncio
async def test_a_client_without_resolve_or_document_changes_gets_complete_edits(
    tmp_path: Path,
) -> None:
    session = await _start(server_projects.service(tmp_path), types.ClientCapabilities())
    try:
        uri = session.open("app/lookups.py")
        (finding,) = await session.diagnostics(uri, version=1)
        actions = await session.client.text_document_code_action_async(
            types.CodeActionParams(
                types.TextDocumentIdentifier(uri),
                finding.range,
                types.CodeActionContext(diagnostics=[finding], only=["source.fixAll"]),
            )
        )
        assert actions is not None
        (action,) = actions
        assert isinstance(action, types.CodeAction)
        assert action.edit is not None
        assert action.edit.changes is not None
        version = session.apply(action.edit)
        assert session.texts[uri] == server_projects.LOOKUPS_FIXED
        assert await session.diagnostics(uri, version=version) == []
    finally:
        assert await _stop(session) == 0


@pytest.mark.asyncio
async def test_an_unknown_request_is_answered_with_an_error_and_logged(session: Session) -> None:
    with pytest.raises(JsonRpcException):
        await asyncio.wait_for(
            session.client.protocol.send_request_async("slotguard/noSuchMethod", {"x": 1}), WAIT
        )
    # A document that was never opened has nothing to say.
    unopened = await session.client.text_document_hover_async(
        types.HoverParams(
            types.TextDocumentIdentifier(session.uri("app/main.py")),
            types.Position(line=0, character=0),
        )
    )
    assert unopened is None
    uri = session.open("app/lookups.py")
    assert _codes(await session.diagnostics(uri, version=1)) == ["SG201"]
    await _until(
        lambda: any(m.type == types.MessageType.Error for m in session.client.log_messages) or None,
        "an error in the client's log",
    )


@pytest.mark.asyncio
async def test_shutdown_and_exit_end_the_server_cleanly(tmp_path: Path) -> None:
    session = await _start(server_projects.service(tmp_path), client_capabilities("neovim"))
    uri = session.open("app/lookups.py")
    await session.diagnostics(uri, version=1)
    assert await _stop(session) == 0


def _message(payload: dict[str, Any] | bytes) -> bytes:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def _responses(output: bytes) -> list[dict[str, Any]]:
    found = []
    while output:
        header, _, rest = output.partition(b"\r\n\r\n")
        fields = dict(line.split(b": ", 1) for line in header.split(b"\r\n"))
        length = int(fields[b"Content-Length"])
        found.append(json.loads(rest[:length]))
        output = rest[length:]
    return found


def test_malformed_messages_do_not_stop_the_server(tmp_path: Path) -> None:
    """Raw bytes on standard input: a body that is not JSON, and a request
    whose parameters do not fit its method, between good requests."""
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}},
        {"jsonrpc": "2.0", "method": "initialized", "params": {}},
        b"{not json",
        {"jsonrpc": "2.0", "id": 2, "method": "textDocument/codeAction", "params": {"x": 1}},
        {"jsonrpc": "2.0", "id": 3, "method": "shutdown"},
        {"jsonrpc": "2.0", "method": "exit"},
    ]
    completed = subprocess.run(
        SERVER,
        input=b"".join(_message(m) for m in messages),
        capture_output=True,
        cwd=tmp_path,
        timeout=WAIT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode()
    answers = {item["id"]: item for item in _responses(completed.stdout) if "id" in item}
    assert "capabilities" in answers[1]["result"]
    assert answers[2]["error"]["code"] == -32602  # invalid params
    assert answers[3]["result"] is None
    logged = [
        item["params"]["message"]
        for item in _responses(completed.stdout)
        if item.get("method") == "window/logMessage"
    ]
    assert logged


def test_without_the_server_extra_the_command_says_how_to_install_it(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    (blocked / "pygls").mkdir(parents=True)
    (blocked / "pygls" / "__init__.py").write_text("raise ImportError('No module named pygls')\n")
    completed = subprocess.run(
        SERVER,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(blocked)},
        timeout=WAIT,
        check=False,
    )
    assert completed.returncode == 2
    assert "pip install 'slotguard[server]'" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.asyncio
async def test_columns_are_counted_in_utf16_for_a_client_that_counts_so(tmp_path: Path) -> None:
    """VS Code 1.65 offers no position encoding: UTF-16 code units, where an
    emoji counts two."""
    session = await _start(
        server_projects.service(tmp_path), client_capabilities("visual-studio-code")
    )
    try:
        text = server_projects.LOOKUPS.replace(
            "    conn = await pool.acquire()", '    note = "😋"; conn = await pool.acquire()'
        )
        uri = session.open("app/lookups.py", text)
        (finding,) = await session.diagnostics(uri, version=1)
        # `await` starts at code point 23 (0-based): UTF-16 unit 24.
        assert _range(finding) == (4, 24, 4, 44)
        hover = await session.client.text_document_hover_async(
            types.HoverParams(types.TextDocumentIdentifier(uri), finding.range.start)
        )
        assert hover is not None
    finally:
        assert await _stop(session) == 0


@pytest.mark.asyncio
async def test_a_cancelled_request_is_answered_as_cancelled_or_done(session: Session) -> None:
    uri = session.open("app/lookups.py")
    (finding,) = await session.diagnostics(uri, version=1)
    # A newer version is on its way: the code actions asked for are obsolete.
    session.replace(uri, server_projects.LOOKUPS_FIXED)
    params = types.CodeActionParams(
        types.TextDocumentIdentifier(uri),
        finding.range,
        types.CodeActionContext(diagnostics=[finding]),
    )
    pending = session.client.protocol.send_request_async(
        types.TEXT_DOCUMENT_CODE_ACTION, params, msg_id="obsolete"
    )
    session.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="obsolete"))
    try:
        await asyncio.wait_for(pending, WAIT)
    except JsonRpcException as error:
        # -32800: cancelled; -32801: the content changed under it.
        assert error.code in (-32800, -32801), repr(error)
    assert await session.diagnostics(uri, version=2) == []
    hover = await session.client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(line=4, character=8))
    )
    assert hover is None
