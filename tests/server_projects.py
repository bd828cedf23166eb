"""Small projects the language server's tests open files of.

``service``: a FastAPI application whose lifespan (``app/main.py``) puts an
asyncpg pool on ``app.state``, a route module (``app/routes.py``) that takes
a connection from that pool and never gives it back (SG101, seen only with
the project: the route module does not import the one that types the state),
and a lookup (``app/lookups.py``) whose early return skips the release
(SG201, with a safe fix).
"""

from __future__ import annotations

from pathlib import Path

MAIN = """\
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI


@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.pool = await asyncpg.create_pool("postgresql://localhost/app")
    try:
        yield
    finally:
        await app.state.pool.close()


app = FastAPI(lifespan=lifespan)
"""

ROUTES = """\
from fastapi import APIRouter, Request

router = APIRouter()


@router.get("/orders/{order_id}")
async def get_order(request: Request, order_id: int):
    conn = await request.app.state.pool.acquire()
    return await conn.fetchrow("select * from orders where id = $1", order_id)
"""
ROUTES_ACQUIRE = (7, 11, 7, 49)
"""0-based LSP range of ``await request.app.state.pool.acquire()``."""

ROUTES_RELEASED = """\
from fastapi import APIRouter, Request

router = APIRouter()


@router.get("/orders/{order_id}")
async def get_order(request: Request, order_id: int):
    async with request.app.state.pool.acquire() as conn:
        return await conn.fetchrow("select * from orders where id = $1", order_id)
"""

KEPT = """\
import asyncpg


async def server_pid(pool: asyncpg.Pool):
    conn = await pool.acquire()
    await conn.execute("select 1")
    return conn.get_server_pid
"""
"""An SG101 finding without a fix: what the connection gives is returned."""

LOOKUPS = """\
import asyncpg


async def find_user(pool: asyncpg.Pool, key):
    conn = await pool.acquire()
    if key is None:
        return None
    row = await conn.fetchrow("select $1", key)
    await pool.release(conn)
    return row
"""
LOOKUPS_ACQUIRE = (4, 11, 4, 31)

LOOKUPS_FIXED = """\
import asyncpg


async def find_user(pool: asyncpg.Pool, key):
    async with pool.acquire() as conn:
        if key is None:
            return None
        row = await conn.fetchrow("select $1", key)
    return row
"""


def service(root: Path, config: str = "") -> Path:
    """Write the service project under ``root``; returns ``root``."""
    files = {
        "slotguard.toml": config,
        "app/__init__.py": "",
        "app/main.py": MAIN,
        "app/routes.py": ROUTES,
        "app/lookups.py": LOOKUPS,
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
