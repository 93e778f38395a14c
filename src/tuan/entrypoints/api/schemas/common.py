"""Field types shared by the API schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt

Cents = Annotated[StrictInt, Field(ge=0, le=10**11, description="Money in integer cents (分).")]
PositiveCents = Annotated[StrictInt, Field(ge=1, le=10**11, description="Integer cents (分), ≥ 1.")]
Quantity = Annotated[StrictInt, Field(ge=1, le=10_000)]
Id = Annotated[str, Field(min_length=1, max_length=40)]


class In(BaseModel):
    """Request bodies: unknown fields are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


Timestamp = AwareDatetime
__all__ = ["Cents", "Id", "In", "Out", "PositiveCents", "Quantity", "Timestamp", "datetime"]


class Problem(BaseModel):
    """An RFC 9457 problem document; ``code`` is stable, ``detail`` is in the caller's language
    (Chinese by default, English with ``Accept-Language: en``)."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str
    errors: list[dict[str, object]] | None = None


_PROBLEM_REF = "#/components/schemas/Problem"


def problem_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` declaring problem documents for these statuses."""
    return {
        status: {
            "model": Problem,
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
            "description": "A problem document (RFC 9457).",
        }
        for status in statuses
    }
