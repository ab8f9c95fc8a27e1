"""Atomic writes (runtime files, toolchain folders), stale-writer clean-up, output checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edgegen.core.errors import ConfigError
from edgegen.core.fileio import atomic_dir, check_output_dir, check_output_file
from edgegen.runtime.fileio import atomic_write_text, clean_stale

DEAD = 2**22 + 12345  # above Linux's default pid_max (4194304): never a live process


def test_a_killed_writer_leaves_only_hidden_names_and_the_next_writer_removes_them(
        tmp_path: Path) -> None:
    code = (f"import os, signal\nfrom edgegen.core.fileio import atomic_dir\n"
            f"with atomic_dir({str(tmp_path / 'b')!r}) as tmp:\n"
            f"    (tmp / 'manifest.json').write_text('{{}}')\n"
            f"    os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", code], timeout=120)
    assert done.returncode == -signal.SIGKILL
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".b.partial-"), left
    with atomic_dir(tmp_path / "b") as tmp:
        (tmp / "x").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


def test_clean_stale_removes_dead_writers_only_and_restores_a_moved_aside_bundle(
        tmp_path: Path) -> None:
    (tmp_path / f".b.partial-{DEAD}-abc").mkdir()
    (tmp_path / f".b.partial-{os.getpid()}-live").mkdir()  # a live writer: untouched
    (tmp_path / f".r.json.tmp-{DEAD}-x.tmp").write_text("half")
    (tmp_path / f".c.partial-{DEAD}-abc").mkdir()  # another name: not this writer's business
    old = tmp_path / f".b.old-{DEAD}"  # died between the two renames of a replace
    old.mkdir()
    (old / "manifest.json").write_text("the previous bundle")
    clean_stale(tmp_path / "b")
    assert (tmp_path / "b" / "manifest.json").read_text() == "the previous bundle"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f".b.partial-{os.getpid()}-live", f".r.json.tmp-{DEAD}-x.tmp",
         f".c.partial-{DEAD}-abc", "b"])
    atomic_write_text(tmp_path / "r.json", "{}")
    assert not (tmp_path / f".r.json.tmp-{DEAD}-x.tmp").exists()


def test_output_checks(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    check_output_file(tmp_path / "new" / "deeper" / "r.json", "--json")
    check_output_dir(tmp_path / "d", "--out")
    check_output_dir(tmp_path / "new" / "run", "--out")
    for call, message in [
        (lambda: check_output_file(tmp_path / "d", "--json"), "is a folder"),
        (lambda: check_output_file(tmp_path / "f" / "r.json", "--json"), "is a file, not a folder"),
        (lambda: check_output_file("/proc/x.json", "--json"), "cannot write in /proc"),
        (lambda: check_output_file("/dev/null", "--json"), "not a regular file"),
        (lambda: check_output_dir(tmp_path / "f", "--out"), "is a file, not a folder"),
        (lambda: check_output_dir(tmp_path / "f" / "sub", "--out"), "is a file, not a folder"),
    ]:
        with pytest.raises(ConfigError, match=message):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"]  # the checks create nothing
