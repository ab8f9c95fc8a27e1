"""Atomic file writes and file hashes: a crash never leaves a half-written file that looks whole.

Every temporary name carries the writer's pid (``.NAME.tmp-PID-…`` for a file,
``.NAME.partial-PID-…`` for a folder written by the toolchain's ``edgegen.core.fileio.atomic_dir``),
so the next writer of ``NAME`` can remove what a killed one (``kill -9``, a power cut) left
behind — only when that pid is gone (``clean_stale``). A SIGINT/SIGTERM received while a file
was written stops its commit.
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

_STALE = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|old|tmp)-(?P<pid>\d+)(?:-.*)?$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish_mode(path: str | Path, *, directory: bool = False) -> None:
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
        publish_mode(tmp)
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
        publish_mode(tmp)
        interrupts.raise_if_received_since(mark)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
