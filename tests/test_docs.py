"""The README and docs stay true: result regions are rendered from recorded files, and every
`edgegen` command the README shows parses (its command and options exist)."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgegen.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_README_LINES = 200


def _render_docs():
    spec = importlib.util.spec_from_file_location(
        "render_docs", ROOT / "benchmarks" / "scripts" / "render_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def readme_commands() -> list[str]:
    """`edgegen ...` lines of the README's code blocks (comments and continuations joined)."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    lines = []
    for block in blocks:
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split("  #")[0].split(" # ")[0].strip()
            if line.startswith("edgegen "):
                lines.append(line.split(" > ")[0].split(" | ")[0])
    return lines


def test_the_readme_is_a_front_door() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) <= MAX_README_LINES


def test_every_readme_command_parses() -> None:
    """Each command with ``--help`` appended: click parses every option before it answers
    ``--help``, so a renamed command or option fails here (exit 2), not in a user's shell."""
    commands = readme_commands()
    assert len(commands) >= 8, commands  # the README shows one block per command
    runner = CliRunner()
    for line in commands:
        args = shlex.split(line)[1:] + ["--help"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"{line}: {result.output[-400:]}"


def test_a_renamed_option_would_fail_the_check() -> None:
    """The check above can fail: an option that does not exist exits 2 even with --help."""
    result = CliRunner().invoke(app, ["export", "runs/x", "--no-such-option", "1", "--help"])
    assert result.exit_code == 2


def test_result_regions_are_rendered_from_the_recorded_files(tmp_path: Path) -> None:
    render_docs = _render_docs()
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/scripts/render_docs.py"),
                           "--check"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    # and a hand edit inside a region is caught
    (tmp_path / "r.md").write_text("| a | 1 |\n")
    doc = "x\n<!-- include: r.md -->\n| a | 2 |\n<!-- end include -->\ny\n"
    assert render_docs.render(doc, tmp_path) == "x\n<!-- include: r.md -->\n| a | 1 |\n" \
                                                "<!-- end include -->\ny\n"
    with pytest.raises(SystemExit, match="not a file"):
        render_docs.render("<!-- include: ../etc/passwd -->\n<!-- end include -->", tmp_path)
    # PATH#table: only the report's first table
    (tmp_path / "rep.md").write_text("# title\n\nnote\n\n| h |\n|---|\n| 3 |\n\n| later |\n")
    region = "<!-- include: rep.md#table -->\n{}<!-- end include -->"
    assert render_docs.render(region.format("old\n"), tmp_path) == \
        region.format("| h |\n|---|\n| 3 |\n")
    (tmp_path / "plain.md").write_text("no table\n")
    with pytest.raises(SystemExit, match="no Markdown table"):
        render_docs.render("<!-- include: plain.md#table -->\n<!-- end include -->", tmp_path)
