"""Money in integer cents: pro-rata splits that add up exactly, and yuan only for display."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tuan.shared.money import cents, format_yuan, split_pro_rata

totals = st.integers(min_value=0, max_value=10**9)
weight_lists = st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=30).filter(
    lambda ws: sum(ws) > 0
)


@given(totals, weight_lists)
@example(1, [1, 1, 1])
@example(100, [1, 1, 1])
@example(10**9, [10**7, 1])
def test_split_sums_exactly(total: int, weights: list[int]) -> None:
    parts = split_pro_rata(total, weights)
    assert len(parts) == len(weights)
    assert sum(parts) == total
    assert all(p >= 0 for p in parts)


@given(totals, weight_lists)
def test_split_is_proportional_within_a_cent(total: int, weights: list[int]) -> None:
    parts = split_pro_rata(total, weights)
    wsum = sum(weights)
    for part, w in zip(parts, weights, strict=True):
        exact = Fraction(total * w, wsum)
        assert abs(part - exact) < 1  # floor or ceiling of the exact share
        if w == 0:
            assert part == 0  # a zero weight never gets a leftover cent


@given(totals, weight_lists)
def test_split_is_deterministic_and_scale_free(total: int, weights: list[int]) -> None:
    assert split_pro_rata(total, weights) == split_pro_rata(total, weights)
    assert split_pro_rata(total, [3 * w for w in weights]) == split_pro_rata(total, weights)


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=1, max_value=50))
def test_equal_weights_differ_by_at_most_one_cent(total: int, n: int) -> None:
    parts = split_pro_rata(total, [7] * n)
    assert max(parts) - min(parts) <= 1
    # The leftover cents go to the first parts (ties broken by position).
    assert parts == sorted(parts, reverse=True)


@given(totals, weight_lists)
def test_bigger_weight_never_gets_less(total: int, weights: list[int]) -> None:
    parts = split_pro_rata(total, weights)
    for i in range(len(weights)):
        for j in range(len(weights)):
            if weights[i] > weights[j]:
                assert parts[i] >= parts[j]


@pytest.mark.parametrize(
    "total,weights,expected",
    [
        (100, [1, 1, 1], [34, 33, 33]),
        (1, [1, 1, 1], [1, 0, 0]),
        (2, [1, 1, 1], [1, 1, 0]),
        (1000, [1, 3], [250, 750]),
        (10, [1, 2, 0, 2], [2, 4, 0, 4]),
        # Spoiled fruit: 1 yuan 20 refunded over orders of 29.90, 29.90 and 25.90 yuan.
        (120, [2990, 2990, 2590], [42, 42, 36]),
        (0, [5, 5], [0, 0]),
        (7, [1], [7]),
    ],
)
def test_split_examples(total: int, weights: list[int], expected: list[int]) -> None:
    assert split_pro_rata(total, weights) == expected


@pytest.mark.parametrize("total,weights", [(-1, [1]), (10, [1, -1]), (-5, [-1])])
def test_split_refuses_negatives(total: int, weights: list[int]) -> None:
    with pytest.raises(ValueError):
        split_pro_rata(total, weights)


def test_split_of_nothing_over_nothing() -> None:
    assert split_pro_rata(0, [0, 0]) == [0, 0]
    assert split_pro_rata(0, []) == []


@pytest.mark.parametrize("weights", [[0, 0], []])
def test_split_never_loses_money_over_zero_weights(weights: list[int]) -> None:
    # Regression: a positive total over zero weights used to return [0]*n, losing it all.
    try:
        parts = split_pro_rata(100, weights)
    except ValueError:
        return  # refusing is a correct answer
    assert sum(parts) == 100


@pytest.mark.parametrize(
    "amount,text",
    [
        (0, "¥0.00"),
        (1, "¥0.01"),
        (5, "¥0.05"),
        (99, "¥0.99"),
        (100, "¥1.00"),
        (2990, "¥29.90"),
        (123456, "¥1,234.56"),
        (123456789, "¥1,234,567.89"),
        (-1, "-¥0.01"),
        (-150, "-¥1.50"),
        (-123456, "-¥1,234.56"),
    ],
)
def test_format_yuan(amount: int, text: str) -> None:
    assert format_yuan(amount) == text
    assert format_yuan(amount, "en") == text


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_format_yuan_round_trips(amount: int) -> None:
    text = format_yuan(amount)
    sign = -1 if text.startswith("-") else 1
    yuan, fen = text.lstrip("-").removeprefix("¥").replace(",", "").split(".")
    assert len(fen) == 2
    assert sign * (int(yuan) * 100 + int(fen)) == amount


def test_cents_accepts_only_integers() -> None:
    assert cents(2990) == 2990
    assert cents(0) == 0
    assert cents(-5) == -5
    for bad in (1.5, 2990.0, "2990", True, None):
        with pytest.raises(TypeError):
            cents(bad)  # type: ignore[arg-type]
