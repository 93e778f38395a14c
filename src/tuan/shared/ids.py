"""Identifiers: sortable random ids for rows, short human-friendly invite codes."""

from __future__ import annotations

import os
import secrets
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
_INVITE = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O/1/I for codes read aloud
# Every 10-bit value as its two Crockford digits: an id's 26 digits are 13 lookups.
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)
_SHIFTS = tuple(range(120, -1, -10))


_lock = threading.Lock()
_last = (0, 0)  # (millisecond, random part) of the last id made in this process


def new_id(prefix: str) -> str:
    """``prefix_`` + 26 chars: 48-bit millisecond time then 80 random bits (ULID layout).

    Monotonic within a process (as ULID's monotonic mode): an id made in the same millisecond
    as the previous one takes the previous random part plus one, so rows inserted one after the
    other (a campaign's items, say) sort in the order they were made."""
    global _last
    ms = time.time_ns() // 1_000_000
    with _lock:
        last_ms, last_rand = _last
        if ms <= last_ms and last_rand < (1 << 80) - 1:
            ms, rand = last_ms, last_rand + 1
        else:
            rand = int.from_bytes(os.urandom(10), "big")
        _last = (ms, rand)
    # 26 base-32 digits (130 bits, the top two zero), two digits at a time: the same digits as
    # dividing by 32 twenty-six times, in a third of the time.
    value = (ms << 80) | rand
    pairs = _PAIRS
    return f"{prefix}_{''.join([pairs[(value >> s) & 1023] for s in _SHIFTS])}"


def invite_code(length: int = 8) -> str:
    return "".join(secrets.choice(_INVITE) for _ in range(length))
