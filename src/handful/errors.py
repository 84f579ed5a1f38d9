"""Errors a user can fix. The CLI prints a HandfulError as one line and exits 1,
so a traceback always means a bug in handful, never a mistake in the input."""

from __future__ import annotations

import difflib


class HandfulError(Exception):
    """Base of every error caused by input, configuration or environment."""


class ConfigError(HandfulError):
    """A recipe or option is invalid; the message lists every bad field."""


class RecordError(HandfulError):
    """A record file is malformed; the message names the file, line and field."""


class UnknownNameError(HandfulError):
    """A registry lookup missed; the message lists the known names, closest first."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        close = difflib.get_close_matches(name, known, n=len(known), cutoff=0.0)
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(close)}")


class EngineError(HandfulError):
    """A generation backend failed in a way retries could not fix."""


class ScoringError(HandfulError):
    """Scores cannot be computed honestly from the samples given."""


def lookup(kind: str, registry: dict, name: str):
    """The one way to look a name up in a registry dict."""
    try:
        return registry[name]
    except KeyError:
        raise UnknownNameError(kind, name, sorted(registry)) from None
