"""Folders written atomically, outputs checked before the work, reports never lost.

``atomic_dir`` builds a folder under a hidden temporary name (``.NAME.partial-PID-…``) and renames
it into place, on the same rules as the runtime's ``atomic_file`` (``edgegen.runtime.fileio``).
Outputs are checked before a command does its work (``check_output_file``, ``check_output_dir``:
the error names the option), and a report that cannot be written at the end is handed back in an
``OutputError`` instead of being lost (``save_report``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgegen.core.errors import ConfigError, OutputError
from edgegen.runtime import interrupts
from edgegen.runtime.fileio import atomic_write_text, clean_stale, publish_mode


@contextmanager
def atomic_dir(path: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Build a folder under a temporary name beside ``path`` and rename it into place.

    A killed writer leaves only a hidden ``.name.partial-PID-*`` folder, never something that
    looks like a finished ``path``, and the next ``atomic_dir(path)`` removes it. With ``force``
    an existing ``path`` is replaced only after the new one is complete; SIGINT/SIGTERM wait
    for the two renames of the swap. A signal that arrived while the folder was built — even one
    that some library swallowed — stops the commit.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    mark = interrupts.count()
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-{os.getpid()}-", dir=path.parent))
    try:
        yield tmp
        publish_mode(tmp, directory=True)
        interrupts.raise_if_received_since(mark)
        with interrupts.deferred():
            if os.path.lexists(path):
                if not force:  # checked by callers too; this is the last line of defence
                    raise FileExistsError(path)
                old = path.with_name(f".{path.name}.old-{os.getpid()}")
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)



def _nearest_existing(path: Path) -> Path:
    p = path
    while not os.path.lexists(p) and p.parent != p:
        p = p.parent
    return p


def _require_writable_dir(directory: Path, option: str, path: Path) -> None:
    """Probe by creating (and removing) a hidden file: permissions, read-only file systems and
    pseudo file systems such as /proc all answer the same way."""
    if not directory.is_dir():
        raise ConfigError(f"{option} {path}: {directory} is a file, not a folder; choose a "
                          "path whose parent folders are folders")
    try:
        fd, probe = tempfile.mkstemp(prefix=".edgegen-write-probe-", dir=directory)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot write in {directory} "
                          f"({exc.strerror or exc}); choose a writable location") from None
    os.close(fd)
    os.unlink(probe)


def check_output_file(path: str | Path, option: str) -> Path:
    """A ConfigError naming ``option`` unless ``path`` can be written as a file: not a folder,
    not a device or other special file, not under a regular file, in a writable place. Nothing
    is created (the parent folders are made when the file is written)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{option} {p} is a folder; give a file name such as "
                          f"{p / 'report.json'}")
    if os.path.lexists(p) and not p.is_file():
        raise ConfigError(f"{option} {p} exists and is not a regular file; give a new file name")
    _require_writable_dir(_nearest_existing(p.parent), option, p)
    return p


def check_output_dir(path: str | Path, option: str) -> Path:
    """A ConfigError naming ``option`` unless ``path`` is (or can be created as) a writable
    folder: not a file, not under a regular file, in a writable place. Nothing is created."""
    p = Path(path)
    if os.path.lexists(p) and not p.is_dir():
        raise ConfigError(f"{option} {p} is a file, not a folder; choose another path")
    _require_writable_dir(_nearest_existing(p), option, p)
    return p


def save_report(path: str | Path, text: str) -> None:
    """Write a report atomically; when that fails, an ``OutputError`` that carries ``text``, so
    the CLI prints the report instead of losing it."""
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise OutputError(f"could not write the report to {path} ({exc.strerror or exc}); "
                          "it is printed below instead", text=text) from None
