"""Money is integer cents (分). Yuan appear only when text is shown to a person."""

from __future__ import annotations

from typing import NewType

Cents = NewType("Cents", int)


def cents(value: int) -> Cents:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"money must be integer cents, got {type(value).__name__}")
    return Cents(value)


def format_yuan(amount: int, locale: str = "zh-CN") -> str:
    sign = "-" if amount < 0 else ""
    yuan, fen = divmod(abs(amount), 100)
    return f"{sign}¥{yuan:,}.{fen:02d}"


def split_pro_rata(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` cents over ``weights`` (largest remainder): the parts sum exactly."""
    if total < 0 or any(w < 0 for w in weights):
        raise ValueError("total and weights must be non-negative")
    wsum = sum(weights)
    if wsum == 0:
        if total:
            raise ValueError("cannot split a positive total over weights that sum to zero")
        return [0] * len(weights)
    parts = [total * w // wsum for w in weights]
    rest = total - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % wsum), i))
    for i in order[:rest]:
        parts[i] += 1
    return parts
