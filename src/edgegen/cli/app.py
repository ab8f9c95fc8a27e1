"""The ``edgegen`` Typer app: one module per command group, registered here."""

from __future__ import annotations

import signal

import typer

from edgegen.core import __version__
from edgegen.runtime import interrupts
from edgegen.training.torch_utils import pin_numerics_env

app = typer.Typer(
    name="edgegen",
    help="Train a class-conditional MNIST generator, export it to ONNX, and prove that the "
         "deployed model matches, does not hallucinate, and is fast.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgegen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """edgegen: from training to production inference, with proof at every step."""


def _register() -> None:
    from edgegen.cli import (
        bench,
        compare,
        demo,
        distill,
        export,
        export_triton,
        serve,
        sign,
        train,
        verify,
    )
    from edgegen.cli import eval as eval_

    for module in (train, distill, export, sign, verify, eval_, bench, compare, serve,
                   export_triton, demo):
        module.register(app)


_register()


def main() -> None:
    """The ``edgegen`` command: SIGINT and SIGTERM raise ``Interrupted`` wherever the program
    is, so every ``finally`` runs (temporary folders go) and the exit code is 130 / 143."""
    # Before anything imports torch: the numerics settings that GNU OpenMP and MKL read once
    # (edgegen.training.torch_utils). torchrun's workers run this too, and inherit them.
    pin_numerics_env()
    interrupts.install()
    try:
        app()
    except SystemExit as exc:
        # Typer turns a KeyboardInterrupt that escapes a command into exit 130: SIGTERM is 143
        if exc.code == 130 and interrupts.count() and interrupts.last() == signal.SIGTERM:
            raise SystemExit(143) from None
        raise
