"""``edgegen sign``: sign a bundle with OpenSSF model signing and an elliptic-curve key.

``sign_bundle(root, key)`` first checks the bundle (``load_bundle``: schema, files, hashes) — a
bundle that fails its own checks is never signed — then signs every file of the folder except
``edgegen.runtime.signature.UNSIGNED`` (the signature itself and engine caches) into
``root/bundle.sig``. The signature is written beside the folder and renamed in, so the file being
written is never part of what is hashed, and a killed signer leaves no half-written
``bundle.sig``. ``edgegen export --sign-key`` calls it on the finished temporary folder, before
that folder is renamed into place. Verification is ``edgegen.runtime.signature``.

Keyless signing (Sigstore, with an OIDC identity, for CI that has network) is model_signing's
own CLI with the same ignored paths; see README.md.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgegen.core.errors import BundleError, ConfigError
from edgegen.core.report import Report
from edgegen.runtime import interrupts
from edgegen.runtime.bundle import SIGNATURE, load_bundle
from edgegen.runtime.signature import hashing_config, model_signing


@dataclass
class SignResult(Report):
    bundle: Path
    signature: Path
    files: int  # files covered (manifest.json included)


def check_private_key(key: str | Path, option: str = "--key") -> Path:
    """A ConfigError naming ``option`` unless ``key`` is a PEM EC private key model_signing can
    use (checked before any work, so a typo does not cost an export)."""
    key = Path(key)
    if not key.is_file():
        raise ConfigError(f"{option} {key} does not exist or is not a file; pass a PEM "
                          "elliptic-curve private key (e.g. `openssl ecparam -name prime256v1 "
                          "-genkey -noout -out private.pem`)")
    ms = model_signing()
    try:
        ms.signing.Config().use_elliptic_key_signer(private_key=key)
    except Exception as exc:  # noqa: BLE001 - cryptography raises ValueError/TypeError/...
        raise ConfigError(f"{option} {key} is not an unencrypted PEM elliptic-curve private key "
                          f"(P-256, P-384 or P-521): {str(exc)[:200]}") from None
    return key


def sign_bundle(root: str | Path, key: str | Path, *, check: bool = True) -> SignResult:
    """Write ``root/bundle.sig`` over every file of ``root`` (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise BundleError(f"{root} is not a folder: expected a bundle made by `edgegen export`")
    key = check_private_key(key)
    bundle = load_bundle(root) if check else None
    ms = model_signing()
    config = ms.signing.Config().use_elliptic_key_signer(private_key=key)
    config.set_hashing_config(hashing_config())
    mark = interrupts.count()
    fd, tmp = tempfile.mkstemp(prefix=f".{root.name}.tmp-{os.getpid()}-", suffix=".sig",
                               dir=root.resolve().parent)
    os.close(fd)
    try:
        config.sign(root, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        interrupts.raise_if_received_since(mark)
        os.replace(tmp, root / SIGNATURE)
    finally:
        Path(tmp).unlink(missing_ok=True)
    files = len(bundle.manifest["files"]) + 1 if bundle is not None else 0
    return SignResult(bundle=root, signature=root / SIGNATURE, files=files)
