"""What every command shares: consoles, the error boundary, and a progress display."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from edgegen.runtime.errors import ConfigError, EdgegenError

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


@contextmanager
def errors_to_exit() -> Iterator[None]:
    """An ``EdgegenError`` becomes one red line on stderr and its exit code; bugs keep their
    traceback."""
    try:
        yield
    except EdgegenError as exc:
        # escape: messages hold literal brackets (`pip install -e .[gpu]`, shapes, lists)
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False,
                          soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None


@contextmanager
def progress_display(label: str) -> Iterator[Callable[[dict[str, Any]], None]]:
    """A rich progress bar fed by a stage's ``on_progress`` events."""
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console,
        transient=False,
    )
    task = progress.add_task(label, total=None, info="")

    def on_progress(event: dict[str, Any]) -> None:
        kind = event["kind"]
        if kind == "note":
            progress.console.print(event["text"], highlight=False)
        elif kind == "start":
            progress.update(task, total=event.get("total_steps"), completed=event["step"],
                            description=f"{label} {event.get('arch', '')}".strip())
        elif kind == "step":
            losses = " ".join(f"{k}={v:.3f}" for k, v in event["losses"].items())
            progress.update(task, completed=event["step"],
                            info=f"epoch {event['epoch'] + 1} {losses} "
                                 f"{event['images_per_s']:.0f} img/s")

    with progress:
        yield on_progress
