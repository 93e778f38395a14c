"""The operator console: server-rendered pages (Jinja2 + htmx + Alpine.js, ECharts for charts).

Pages live under ``/console``; each names one permission of ``accounts.permissions`` and the
server checks it. Text is written in both languages where it is used: ``t("中文", "English")``.
"""

from tuan.entrypoints.console.app import mount

__all__ = ["mount"]
