"""What every command shares: consoles, the error boundary, and the one progress display.

The error boundary (``errors_to_exit``) is where exit codes come from: an ``EdgegenError``
is one red line and its code (2 bad input, 1 a failed gate) — an ``OutputError`` also prints the
report it could not write, so nothing measured is lost; SIGINT is 130 and SIGTERM 143 (the
entry point, ``edgegen.cli.app.main``, turns SIGTERM into an exception that unwinds like Ctrl-C:
temporary files and folders are removed on the way out), never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from edgegen.core.errors import (
    CheckFailed,
    ConfigError,
    DistributedError,
    EdgegenError,
    OutputError,
)
from edgegen.core.fileio import save_report
from edgegen.core.progress import Progress as ProgressEvent
from edgegen.core.progress import ProgressFn
from edgegen.core.report import Report
from edgegen.runtime.interrupts import Interrupted

console = Console()
err_console = Console(stderr=True)


def csv_option(text: str | None, option: str, kind: Callable[[str], Any] = str
               ) -> tuple[Any, ...]:
    """``"a, b,c"`` -> ``("a", "b", "c")`` (names lower-cased, duplicates dropped); with ``kind``
    ``int`` or ``float`` the parts are converted, and a bad part is a ``ConfigError`` naming
    ``option``. ``None`` or an empty string gives ``()``."""
    parts = [p.strip() for p in (text or "").split(",") if p.strip()]
    if kind is str:
        return tuple(dict.fromkeys(p.lower() for p in parts))
    try:
        return tuple(kind(p) for p in parts)
    except ValueError:
        what = "integers such as 1,64" if kind is int else "numbers such as 0.5,0.7,1.0"
        raise ConfigError(f"{option} takes comma-separated {what}; got {text!r}") from None


def saved(report: Report, out: Path | None, json_path: Path | None) -> None:
    """Write ``report``'s JSON to ``json_path`` when asked, and say where the report files are
    (``out`` holds ``report.md``)."""
    if json_path is not None:
        save_report(json_path, report.to_json() + "\n")
    where = [str(p) for p in (out / "report.md" if out is not None else None, json_path) if p]
    if where:
        console.print(f"report: {', '.join(where)}", highlight=False)


def forwarded_args(ctx: typer.Context, skip: tuple[str, ...] = ()) -> list[str]:
    """The options of the running command, as a command line that gives the same values (for a
    launcher that runs the command again in other processes); options named in ``skip`` (Python
    names) and options without a value are left out."""
    args: list[str] = []
    for param in ctx.command.params:
        if getattr(param, "param_type_name", "") != "option" or param.name in skip:
            continue
        value = ctx.params.get(param.name)
        if value is None:
            continue
        if param.is_flag:
            if value:
                args.append(param.opts[0])
            elif param.secondary_opts:
                args.append(param.secondary_opts[0])
        else:
            args += [param.opts[0], str(value)]
    return args


# Exit codes: 1 for a failed gate or a lost training process, 2 for everything a user can fix
# (bad input, a missing file, an unavailable provider...), 130/143 for SIGINT/SIGTERM.
GATE_ERRORS = (CheckFailed, DistributedError)


def exit_code(exc: EdgegenError) -> int:
    return 1 if isinstance(exc, GATE_ERRORS) else 2


@contextmanager
def errors_to_exit() -> Iterator[None]:
    """An ``EdgegenError`` becomes one red line on stderr and its exit code (an
    ``OutputError`` also prints the report that could not be written); SIGINT / SIGTERM become
    130 / 143 with one line; bugs keep their traceback."""
    try:
        yield
    except EdgegenError as exc:
        # escape: messages hold literal brackets (`pip install -e .[gpu]`, shapes, lists)
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False,
                          soft_wrap=True)
        if isinstance(exc, OutputError) and exc.text:
            console.print(exc.text, markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(exit_code(exc)) from None
    except KeyboardInterrupt as exc:
        code = exc.exit_code if isinstance(exc, Interrupted) else 130
        name = "SIGTERM" if code == 143 else "SIGINT" if code == 130 else f"signal {code - 128}"
        err_console.print(f"[bold red]interrupted[/] ({name}): stopped; temporary files were "
                          "removed and nothing unfinished was put in place", highlight=False,
                          soft_wrap=True)
        raise typer.Exit(code) from None


@contextmanager
def progress_display(stage: str) -> Iterator[ProgressFn]:
    """The one progress display of every command, fed by a stage's ``Progress`` events: an
    event that counts moves its task's bar (a new task adds a bar), one that tells prints a
    line above the bars."""
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[info]}", markup=False), TimeElapsedColumn(), console=console,
        transient=False,
    )
    bars: dict[str, TaskID] = {}

    def on_progress(event: ProgressEvent) -> None:
        if not event.counts:
            progress.console.print(event.task + (f" ({event.info})" if event.info else ""),
                                   markup=False, highlight=False, soft_wrap=True)
            return
        if event.task not in bars:
            bars[event.task] = progress.add_task(escape(event.task), total=event.total, info="")
        progress.update(bars[event.task], completed=event.done, total=event.total,
                        info=event.info)

    with progress:
        yield on_progress


def progress_lines(event: ProgressEvent) -> None:
    """A ``Progress`` event as one printed line (for a command that runs until stopped, where a
    live display would hold the terminal)."""
    console.print(event.line() if event.counts else event.task, markup=False, highlight=False,
                  soft_wrap=True)
