"""``edgegen sign``: sign a bundle (OpenSSF model signing, an elliptic-curve key)."""

from __future__ import annotations

from pathlib import Path

import typer

from edgegen.cli.common import console, errors_to_exit


def sign_command(
    bundle: Path = typer.Argument(..., help="Bundle folder made by `edgegen export`."),
    key: Path = typer.Option(..., "--key", help="PEM elliptic-curve private key (P-256, P-384 "
                                                "or P-521), unencrypted."),
) -> None:
    """Check the bundle, then sign every file in it (manifest.json included) into
    BUNDLE/bundle.sig. Verify with `edgegen verify BUNDLE --public-key public.pem` or
    `Generator.load(BUNDLE, public_key="public.pem")`."""
    from edgegen.core.fileio import check_output_dir
    from edgegen.export.signing import sign_bundle

    with errors_to_exit():
        if bundle.is_dir():
            check_output_dir(bundle, "BUNDLE")  # bundle.sig goes in there
        result = sign_bundle(bundle, key)
    console.print(f"signed {result.files} files of {result.bundle} into {result.signature}",
                  highlight=False)


def register(app: typer.Typer) -> None:
    app.command("sign")(sign_command)
