"""Tuan (团): the group-buying operations platform."""

__version__ = "0.1.0"
