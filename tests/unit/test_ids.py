"""Row ids sort in the order they were made; invite codes avoid look-alike characters."""

from __future__ import annotations

from tuan.shared.ids import invite_code, new_id


def test_ids_made_one_after_another_sort_in_that_order() -> None:
    # many of these share a millisecond: the engine relies on the order (e.g. a campaign's
    # first item is the default SKU of a join)
    made = [new_id("x") for _ in range(5_000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert all(len(i) == 28 and i.startswith("x_") for i in made)


def test_invite_codes_avoid_look_alikes() -> None:
    codes = {invite_code() for _ in range(2_000)}
    assert len(codes) == 2_000
    assert not any(ch in code for code in codes for ch in "01OI")
