"""Identifiers: sortable random ids for rows, short human-friendly invite codes."""

from __future__ import annotations

import os
import secrets
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
_INVITE = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O/1/I for codes read aloud


_lock = threading.Lock()
_last = (0, 0)  # (millisecond, random part) of the last id made in this process


def new_id(prefix: str) -> str:
    """``prefix_`` + 26 chars: 48-bit millisecond time then 80 random bits (ULID layout).

    Monotonic within a process (as ULID's monotonic mode): an id made in the same millisecond
    as the previous one takes the previous random part plus one, so rows inserted one after the
    other (a campaign's items, say) sort in the order they were made."""
    global _last
    ms = int(time.time() * 1000)
    with _lock:
        last_ms, last_rand = _last
        if ms <= last_ms and last_rand < (1 << 80) - 1:
            ms, rand = last_ms, last_rand + 1
        else:
            rand = int.from_bytes(os.urandom(10), "big")
        _last = (ms, rand)
    value = (ms << 80) | rand
    chars = []
    for _ in range(26):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return f"{prefix}_{''.join(reversed(chars))}"


def invite_code(length: int = 8) -> str:
    return "".join(secrets.choice(_INVITE) for _ in range(length))
