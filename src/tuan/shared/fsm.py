"""Explicit state machines: every state change is a named, allowed transition."""

from __future__ import annotations

from collections.abc import Mapping

from tuan.shared.errors import ILLEGAL_TRANSITION, DomainError


class StateMachine:
    def __init__(self, kind: str, transitions: Mapping[str, frozenset[str]]) -> None:
        self.kind = kind
        self.transitions = transitions

    @property
    def states(self) -> frozenset[str]:
        return frozenset(self.transitions) | frozenset().union(*self.transitions.values())

    def can(self, current: str, target: str) -> bool:
        return target in self.transitions.get(current, frozenset())

    def check(self, current: str, target: str) -> str:
        if not self.can(current, target):
            raise DomainError(ILLEGAL_TRANSITION, kind=self.kind, current=current, target=target)
        return target

    def sources(self, target: str) -> tuple[str, ...]:
        """States from which ``target`` may be reached (for conditional UPDATE … WHERE)."""
        return tuple(sorted(s for s, ts in self.transitions.items() if target in ts))
