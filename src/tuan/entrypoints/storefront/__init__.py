"""The storefront: the customer's mobile pages to open and join a group (``/s/…``).

Server-rendered (Jinja2 + htmx + Alpine.js), Chinese by default, English with ``?lang=en``.
Mounted with the console (``console.app.ROUTERS``); static files under ``/static/shop/``.
"""

from tuan.entrypoints.storefront.routes import router

__all__ = ["router"]
