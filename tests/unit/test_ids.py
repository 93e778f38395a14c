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


def test_an_id_is_its_time_and_random_part_in_crockford_base32() -> None:
    import time

    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    before = time.time_ns() // 1_000_000
    made = new_id("ord")
    after = time.time_ns() // 1_000_000
    value = 0
    for ch in made[4:]:  # the ULID definition: 26 digits, most significant first
        value = value * 32 + alphabet.index(ch)
    assert value < 1 << 128
    assert before <= value >> 80 <= after + 1  # +1: a same-millisecond successor
    again = new_id("ord")
    decoded = 0
    for ch in again[4:]:
        decoded = decoded * 32 + alphabet.index(ch)
    assert decoded > value
