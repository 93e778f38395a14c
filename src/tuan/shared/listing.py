"""Lists for tables: one select, the columns one may sort and filter by, paging and scope.

A module's store declares a :class:`Listing` for each list it offers (campaigns, groups, orders…);
the console and the API page, sort, filter and export through :func:`fetch` and :func:`iterate`,
so every table behaves the same and no entry point writes its own query.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection, Select, false, func, or_, select

FilterKind = Literal["text", "eq", "date", "none"]
MAX_PER_PAGE = 200
EXPORT_LIMIT = 200_000


@dataclass(frozen=True)
class Field:
    """A column of a listing: its SQL expression and how it may be filtered."""

    expr: ColumnElement[Any]
    filter: FilterKind = "none"
    sortable: bool = True
    searchable: bool = False  # part of the free-text search ``q``


@dataclass(frozen=True)
class Listing:
    """A list query. ``base`` selects the rows (columns labelled by the keys of ``fields``)."""

    name: str
    base: Select[Any]
    fields: Mapping[str, Field]
    default_sort: str
    default_desc: bool = True
    tiebreak: ColumnElement[Any] | None = None  # unique column: stable pages
    community: ColumnElement[Any] | None = None  # leaders see only their community's rows


@dataclass(frozen=True)
class ListQuery:
    sort: str | None = None
    desc: bool | None = None
    page: int = 1
    per_page: int = 25
    q: str = ""
    filters: Mapping[str, str] = field(default_factory=dict)
    community_id: str | None = None  # the caller's scope (None: everything)
    tz: str = "Asia/Shanghai"  # date filters are days in the operator's zone

    @classmethod
    def from_params(
        cls,
        params: Mapping[str, str],
        listing: Listing,
        *,
        community_id: str | None = None,
        tz: str = "Asia/Shanghai",
    ) -> ListQuery:
        """Read ``sort``, ``desc``, ``page``, ``per_page``, ``q`` and ``f_<field>`` (for date
        fields ``f_<field>_from`` / ``f_<field>_to``), ignoring anything unknown or malformed."""
        sort: str | None = params.get("sort")
        if sort is None or sort not in listing.fields or not listing.fields[sort].sortable:
            sort = None
        desc_raw = params.get("desc")
        desc = None if desc_raw is None else desc_raw in ("1", "true", "yes")
        page = _int(params.get("page"), 1, 1, 1_000_000)
        per_page = _int(params.get("per_page"), 25, 1, MAX_PER_PAGE)
        filters: dict[str, str] = {}
        for key, spec in listing.fields.items():
            if spec.filter == "date":
                for end in ("from", "to"):
                    value = params.get(f"f_{key}_{end}", "").strip()
                    if value and _parse_day(value) is not None:
                        filters[f"{key}_{end}"] = value
            elif spec.filter != "none":
                value = params.get(f"f_{key}", "").strip()
                if value:
                    filters[key] = value[:120]
        return cls(
            sort=sort,
            desc=desc,
            page=page,
            per_page=per_page,
            q=params.get("q", "").strip()[:120],
            filters=filters,
            community_id=community_id,
            tz=tz,
        )

    def params(self, **changes: Any) -> dict[str, str]:
        """The query string that reproduces this query (with ``changes``), for links."""
        values: dict[str, Any] = {
            "sort": self.sort,
            "desc": None if self.desc is None else ("1" if self.desc else "0"),
            "page": self.page,
            "per_page": self.per_page,
            "q": self.q,
        }
        values.update(changes)
        out = {k: str(v) for k, v in values.items() if v not in (None, "")}
        if out.get("page") == "1":
            del out["page"]
        if out.get("per_page") == "25":
            del out["per_page"]
        for key, value in self.filters.items():
            out["f_" + key] = value
        return out


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    total: int
    page: int
    per_page: int
    sort: str
    desc: bool

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _int(raw: str | None, default: int, lo: int, hi: int) -> int:
    try:
        return min(hi, max(lo, int(raw or default)))
    except ValueError:
        return default


def _parse_day(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filtered(listing: Listing, query: ListQuery) -> Select[Any]:
    stmt = listing.base
    if query.community_id is not None:
        if listing.community is None:
            # a scoped caller on a listing without a community column sees nothing
            stmt = stmt.where(false())
        else:
            stmt = stmt.where(listing.community == query.community_id)
    zone = ZoneInfo(query.tz)
    for key, value in query.filters.items():
        if key.endswith(("_from", "_to")) and key.rsplit("_", 1)[0] in listing.fields:
            name, end = key.rsplit("_", 1)
            spec = listing.fields[name]
            if spec.filter != "date":
                continue
            day = _parse_day(value)
            if day is None:
                continue
            if end == "from":
                stmt = stmt.where(spec.expr >= datetime.combine(day, time(0), zone))
            else:
                stmt = stmt.where(
                    spec.expr < datetime.combine(day + timedelta(days=1), time(0), zone)
                )
            continue
        spec_or_none = listing.fields.get(key)
        if spec_or_none is None:
            continue
        if spec_or_none.filter == "text":
            stmt = stmt.where(
                func.lower(spec_or_none.expr).like(
                    "%" + _escape_like(value.lower()) + "%", escape="\\"
                )
            )
        elif spec_or_none.filter == "eq":
            stmt = stmt.where(spec_or_none.expr == value)
    if query.q:
        pattern = "%" + _escape_like(query.q.lower()) + "%"
        terms = [
            func.lower(spec.expr).like(pattern, escape="\\")
            for spec in listing.fields.values()
            if spec.searchable
        ]
        if terms:
            stmt = stmt.where(or_(*terms))
    return stmt


def _ordered(
    listing: Listing, query: ListQuery, stmt: Select[Any]
) -> tuple[Select[Any], str, bool]:
    sort = query.sort or listing.default_sort
    desc = listing.default_desc if query.desc is None else query.desc
    expr = listing.fields[sort].expr
    order = [expr.desc() if desc else expr.asc()]
    if listing.tiebreak is not None:
        order.append(listing.tiebreak.desc() if desc else listing.tiebreak.asc())
    return stmt.order_by(*order), sort, desc


def fetch(conn: Connection, listing: Listing, query: ListQuery) -> Page:
    """One page of the listing, with the total number of matching rows."""
    stmt = _filtered(listing, query)
    total = conn.execute(select(func.count()).select_from(stmt.order_by(None).subquery())).scalar()
    ordered, sort, desc = _ordered(listing, query, stmt)
    page = min(query.page, max(1, -(-int(total or 0) // query.per_page)))
    rows = conn.execute(ordered.limit(query.per_page).offset((page - 1) * query.per_page))
    return Page(
        rows=[dict(r._mapping) for r in rows],
        total=int(total or 0),
        page=page,
        per_page=query.per_page,
        sort=sort,
        desc=desc,
    )


def iterate(
    conn: Connection, listing: Listing, query: ListQuery, limit: int = EXPORT_LIMIT
) -> Iterator[dict[str, Any]]:
    """Every matching row in order (exports), at most ``limit``."""
    ordered, _, _ = _ordered(listing, query, _filtered(listing, query))
    result = conn.execution_options(stream_results=True).execute(ordered.limit(limit))
    for row in result:
        yield dict(row._mapping)
