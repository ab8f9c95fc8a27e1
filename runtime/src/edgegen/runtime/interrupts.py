"""SIGINT and SIGTERM as exceptions that unwind, and a record of which signals arrived.

The CLI entry point calls ``install()``: both signals then raise ``Interrupted`` (a
``KeyboardInterrupt``, so ``except Exception`` never swallows it), which unwinds every ``finally``
(temporary files and folders are removed) and becomes exit code 130 (SIGINT) or 143 (SIGTERM)
in ``edgegen.cli.common``. Some third-party code catches ``KeyboardInterrupt`` itself (torch's
dynamo exporter does, then fails later with an unrelated error); every signal is therefore also
*counted*, and code that must not mistake an interrupt for a failure — a fallback, a commit —
compares ``count()`` before and after (``raise_if_received_since``). ``deferred()`` holds a
signal back until a short critical section (two renames) is done. ``watching()`` counts signals
for a block even when ``install`` was not called (a library user's own handlers stay in charge).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised where the program was; exit code ``128 + signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_count = 0  # signals received since the process started (by edgegen's handlers)
_last = int(signal.SIGINT)
_defer_depth = 0


def _record(signum: int) -> None:
    global _count, _last
    _count += 1
    _last = int(signum)


def _handler(signum: int, frame: FrameType | None) -> None:
    _record(signum)
    if not _defer_depth:
        raise Interrupted(signum)


def install() -> None:
    """Make SIGINT and SIGTERM raise ``Interrupted`` (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            signal.signal(sig, _handler)


def count() -> int:
    """How many signals edgegen's handlers have seen so far (compare two readings)."""
    return _count


def last() -> int | None:
    """The last signal edgegen's handlers saw (None before any)."""
    return _last if _count else None


def raise_if_received_since(mark: int) -> None:
    """Raise ``Interrupted`` when a signal arrived after ``mark = count()`` was read, even if
    the code that ran in between swallowed the ``KeyboardInterrupt``."""
    if _count != mark:
        raise Interrupted(_last)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back until the block is done, then raise (a critical section such
    as moving the old bundle aside and the new one into place). Only with ``install``."""
    global _defer_depth
    mark = _count
    _defer_depth += 1
    try:
        yield
    finally:
        _defer_depth -= 1
    if not _defer_depth:
        raise_if_received_since(mark)


@contextmanager
def watching() -> Iterator[None]:
    """Count SIGINT/SIGTERM that arrive inside the block and then do what the previous handler
    did (a default SIGTERM becomes ``Interrupted`` so that it unwinds). Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # getsignal is None for a handler installed outside Python: leave that one alone
    previous = {sig: h for sig in SIGNALS if (h := signal.getsignal(sig)) is not None}
    if all(p is _handler for p in previous.values()):  # install() already counts them
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> Any:
        prev = previous[signal.Signals(signum)]
        if prev is _handler:
            return _handler(signum, frame)
        _record(signum)
        if callable(prev):
            return prev(signum, frame)
        if prev == signal.SIG_DFL:
            raise Interrupted(signum)
        return None  # SIG_IGN

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, prev in previous.items():
            signal.signal(sig, prev)
