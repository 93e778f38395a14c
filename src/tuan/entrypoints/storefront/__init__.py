"""The storefront: the customer's mobile pages to open and join a group (``/s/…``).

Server-rendered (Jinja2 + htmx + Alpine.js), Chinese by default, English with ``?lang=en``.
Mounted with the console (``console.app.ROUTERS``); static files under ``/static/shop/``.

``router`` is loaded on first use, so that :mod:`.attribution` (plain, no web imports) can be
used by the demo without loading the pages (and the console they share helpers with).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import APIRouter

    router: APIRouter

__all__ = ["router"]


def __getattr__(name: str) -> Any:
    if name == "router":
        from tuan.entrypoints.storefront.routes import router

        return router
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
