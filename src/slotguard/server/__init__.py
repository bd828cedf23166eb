"""``slotguard server``: the Language Server Protocol over standard input and
output, for editors (SPEC section 10).

- ``checking``: the one adapter to slotguard's engine (findings and fixes for
  a buffer's text, with its configuration, seeing its project);
- ``positions``: the engine's lines and columns as the client counts them;
- ``lsp``: the protocol, with pygls and lsprotocol (the ``server`` extra).
"""

from __future__ import annotations

INSTALL_HINT = "pip install 'slotguard[server]'"


class MissingDependencies(Exception):
    """The ``server`` extra is not installed."""


def serve() -> int:
    """Serve one client over standard input and output; the exit status
    (0 after ``shutdown`` and ``exit``, 1 otherwise, as the protocol asks)."""
    try:
        import lsprotocol  # noqa: F401
        import pygls  # noqa: F401
    except ImportError as error:
        raise MissingDependencies(
            f"`slotguard server` needs the language server libraries (pygls, lsprotocol), "
            f"which are not installed ({error}); install them with: {INSTALL_HINT}"
        ) from None
    from slotguard.server.lsp import serve as serve_stdio

    return serve_stdio()
