"""Identifiers: sortable random ids for rows, short human-friendly invite codes."""

from __future__ import annotations

import os
import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
_INVITE = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O/1/I for codes read aloud


def new_id(prefix: str) -> str:
    """``prefix_`` + 26 chars: 48-bit millisecond time then 80 random bits (ULID layout)."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return f"{prefix}_{''.join(reversed(chars))}"


def invite_code(length: int = 8) -> str:
    return "".join(secrets.choice(_INVITE) for _ in range(length))
