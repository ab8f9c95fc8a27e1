"""Atomic file and folder writes: a crash never leaves a half-written file that looks whole.

Every temporary name carries the writer's pid (``.NAME.partial-PID-…`` for a folder,
``.NAME.tmp-PID-…`` for a file), so the next writer of ``NAME`` can remove what a killed one
(``kill -9``, a power cut) left behind — only when that pid is gone (``clean_stale``). Outputs are
checked before a command does its work (``check_output_file``, ``check_output_dir``), and a
report that cannot be written at the end is handed back in an ``OutputError`` instead of being
lost (``save_report``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgegen.runtime import interrupts
from edgegen.runtime.errors import ConfigError, OutputError

_STALE = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|old|tmp)-(?P<pid>\d+)(?:-.*)?$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish_mode(path: str | Path, *, directory: bool = False) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; give them the usual permissions."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (a pid we may not signal counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def clean_stale(path: str | Path) -> list[Path]:
    """Remove what killed writers of ``path`` left beside it: ``.NAME.partial-PID-*`` folders and
    ``.NAME.tmp-PID-*`` files whose process is gone. A ``.NAME.old-PID`` folder is the previous
    version, moved aside while a replacement was renamed in: it is put back when ``path`` is
    missing (the writer died between the two renames) and removed otherwise. Returns what it
    removed or restored."""
    path = Path(path)
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return []
    done = []
    for entry in entries:
        m = _STALE.match(entry.name)
        if not m or m["name"] != path.name or pid_alive(int(m["pid"])):
            continue
        stale = Path(entry.path)
        if m["kind"] == "old" and not os.path.lexists(path):
            os.replace(stale, path)
        elif entry.is_dir(follow_symlinks=False):
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
        done.append(stale)
    return done


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    mark = interrupts.count()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", suffix=".tmp",
                               dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _publish_mode(tmp)
        interrupts.raise_if_received_since(mark)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path for a writer that wants a filename (torch.onnx, PIL, ...).

    The file is renamed onto ``path`` only when the block finishes without an exception.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    mark = interrupts.count()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", suffix=path.suffix,
                               dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        _publish_mode(tmp)
        interrupts.raise_if_received_since(mark)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


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
        _publish_mode(tmp, directory=True)
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


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- outputs


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
