"""Bundle signatures: OpenSSF model signing (``model-signing`` on PyPI), checked with a public key.

A signed bundle holds ``bundle.sig``: a Sigstore bundle (JSON) whose DSSE envelope signs an
in-toto statement listing the sha256 of every file of the folder — ``manifest.json`` included,
so the manifest, and through it every listed hash, is covered. What is never signed
(``UNSIGNED``): the signature itself and the engine caches tools add after export. Signer
(``edgegen.export.signing``) and verifier use the same hashing configuration (``hashing_config``,
with those paths ignored on both sides), so a file added, removed or changed after signing is
named in the refusal.

Why this module is in the runtime: ``Generator.load(path, public_key=...)`` must refuse an
unsigned or differing bundle, and the runtime cannot import the export layer. ``model_signing``
(and its cryptography stack) is imported only inside these functions, on the first signed
load — the one optional import of the runtime besides numpy, onnxruntime and jsonschema,
declared in the import-linter contract; ``import edgegen.runtime`` never imports it, and a
runtime without it works until a public key is given. The Node and browser readers verify the
same ``bundle.sig`` with their platform's ECDSA (the npm package, ``js/src/signature.js``).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path
from typing import Any

from edgegen.runtime.errors import BundleError, ConfigError

SIGNATURE = "bundle.sig"
CACHE_DIRS = ("cache", "trt_cache")  # engine/timing caches tools add after export
UNSIGNED = (SIGNATURE, *CACHE_DIRS)  # ignored by signer and verifier alike
INSTALL = "pip install model-signing pyopenssl  (or: pip install -e '.[sign]')"


def model_signing() -> Any:
    """The ``model_signing`` package, or a ConfigError saying how to install it."""
    try:
        import model_signing as ms
        import model_signing.hashing
        import model_signing.signing
        import model_signing.verifying  # noqa: F401 - the submodules are used through ms
    except ImportError as exc:
        raise ConfigError(f"signing and signature checks need OpenSSF model signing "
                          f"({exc}): {INSTALL}") from exc
    return ms


def hashing_config() -> Any:
    """The hashing both sides use: sha256 per file, no symbolic links, ``UNSIGNED`` ignored and
    nothing else (git's files are signed like any other: a bundle has none)."""
    ms = model_signing()
    return (ms.hashing.Config()
            .use_file_serialization(hashing_algorithm="sha256", allow_symlinks=False)
            .set_ignored_paths(paths=list(UNSIGNED), ignore_git_paths=False))


def _is_signature_file(root: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(root / SIGNATURE).st_mode)
    except FileNotFoundError:
        return False


def signature_status(root: str | Path) -> dict[str, Any]:
    """What can be said without a key: ``unsigned``, or ``signed, not checked``."""
    if _is_signature_file(Path(root)):
        return {"status": "signed, not checked",
                "note": "pass a public key (--public-key, public_key=) to check bundle.sig"}
    return {"status": "unsigned", "note": "no bundle.sig: sign with `edgegen sign`"}


def public_key_fingerprint(public_key: str | Path) -> str:
    """sha256 of the PEM file, for reports (which key checked the bundle)."""
    return hashlib.sha256(Path(public_key).read_bytes()).hexdigest()


_DIFF = (
    (re.compile(r"Hash mismatch for '([^']+)'"), "{} differs from the signed file"),
    (re.compile(r"Extra files found in model '[^']*': ([^'\"\]]+)"), "not signed: {}"),
    (re.compile(r"Missing files in model '[^']*': ([^'\"\]]+)"), "signed but missing: {}"),
)


def describe_mismatch(message: str) -> str:
    """model_signing's "Signature mismatch: [...]" (a list's repr) as a short list of what
    differs, e.g. ``model.onnx differs from the signed file; not signed: extra.bin``."""
    text = message.replace("\\'", "'")
    parts = [what.format(m.group(1).strip()) for pattern, what in _DIFF
             for m in pattern.finditer(text)]
    return "; ".join(parts) if parts else message[:500]


def verify_signature(root: str | Path, public_key: str | Path) -> dict[str, Any]:
    """Check ``root/bundle.sig`` with the PEM ``public_key`` (ECDSA P-256/384/521); a
    BundleError when the bundle is unsigned, signed by another key, or differs from what was
    signed (naming the files), a ConfigError when the key file is not a usable public key."""
    root, key = Path(root), Path(public_key)
    if not key.is_file():
        raise ConfigError(f"public key {key} does not exist or is not a file; pass the PEM "
                          "public key that matches the signing key")
    if not _is_signature_file(root):
        raise BundleError(f"{root} is not signed (no {SIGNATURE}) and a public key was given: "
                          "refusing an unsigned bundle — sign it with `edgegen sign` or get the "
                          "signed copy")
    ms = model_signing()
    try:
        config = ms.verifying.Config().use_elliptic_key_verifier(public_key=key)
    except Exception as exc:  # noqa: BLE001 - cryptography raises several types for bad keys
        raise ConfigError(f"public key {key} is not a PEM elliptic-curve public key "
                          f"(P-256, P-384 or P-521): {str(exc)[:200]}") from None
    config.set_hashing_config(hashing_config())
    try:
        config.verify(root, root / SIGNATURE)
    except ValueError as exc:
        text = str(exc)
        if text.startswith("Signature mismatch"):
            raise BundleError(f"{root}: the files differ from what was signed — "
                              f"{describe_mismatch(text)}; refusing the bundle") from None
        raise BundleError(f"{root}/{SIGNATURE} does not verify with {key}: {text[:300]}; "
                          "refusing the bundle (wrong key, or a forged signature)") from None
    except Exception as exc:  # noqa: BLE001 - bad signature, malformed JSON, wrong key type
        raise BundleError(f"{root}/{SIGNATURE} does not verify with {key} "
                          f"({type(exc).__name__}: {str(exc)[:200] or 'invalid signature'}); "
                          "refusing the bundle (wrong key, or a forged or damaged signature)"
                          ) from None
    return {"status": "verified", "public_key": str(key),
            "public_key_sha256": public_key_fingerprint(key),
            "method": "OpenSSF model signing (ECDSA, Sigstore bundle, DSSE in-toto)"}
