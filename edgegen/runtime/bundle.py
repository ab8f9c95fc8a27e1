"""Bundles: the unit of deployment, and the manifest that describes and protects it.

A reader refuses a schema it does not know, a listed file that is missing or whose sha256 does
not match, a file in the bundle that the manifest does not list, and any path that leaves the
bundle. Imports nothing heavier than the standard library (the torch-free runtime uses it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from edgegen.runtime.errors import BundleError
from edgegen.runtime.fileio import sha256_file

SCHEMA = "edgegen.bundle/1"
MANIFEST = "manifest.json"
PRECISIONS = ("fp32", "fp16", "int8")  # the variants export can make, in this order
VARIANT_FILES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}


@dataclass(frozen=True)
class Bundle:
    """A bundle folder whose manifest has been read and, unless told otherwise, checked."""

    root: Path
    manifest: dict[str, Any]

    def path(self, relative: str) -> Path:
        """The absolute path of a file named in the manifest (refusing escapes)."""
        return self.root / safe_relative(relative)

    @property
    def variants(self) -> dict[str, dict[str, Any]]:
        return self.manifest["variants"]

    def variant_path(self, name: str) -> Path:
        if name not in self.variants:
            raise BundleError(f"{self.root} has no {name!r} variant; it has "
                              f"{', '.join(self.variants)} (export with --precision {name})")
        return self.path(self.variants[name]["file"])

    def model_path(self, variant: str, provider: str) -> Path:
        """The file that serves ``variant`` on ``provider``: TensorRT makes its fp16 engine from
        the fp32 graph (fp16 is a builder flag there); every other pair uses the variant's file."""
        if provider == "tensorrt" and variant == "fp16" and "fp32" in self.variants:
            return self.variant_path("fp32")
        return self.variant_path(variant)

    @property
    def sampler(self) -> dict[str, Any] | None:
        """The ``sampler`` section of an iterative family's bundle (cflow), else None."""
        return self.manifest.get("sampler")

    def denoiser_path(self, precision: str) -> Path:
        """The one-call network of an iterative sampler (``denoiser.onnx`` and variants)."""
        if not self.sampler:
            raise BundleError(f"{self.root} ({self.manifest['generator'].get('architecture')}) "
                              "has no iterative sampler and no denoiser: its model.onnx draws "
                              "an image in one call")
        variants = self.sampler["denoiser"]["variants"]
        if precision not in variants:
            raise BundleError(f"{self.root} has no {precision!r} denoiser; it has "
                              f"{', '.join(variants)} (export with --precision {precision})")
        return self.path(variants[precision]["file"])

    @property
    def z_dim(self) -> int:
        return int(self.manifest["generator"]["z_dim"])

    @property
    def n_classes(self) -> int:
        return int(self.manifest["generator"]["n_classes"])

    @property
    def evaluator_path(self) -> Path | None:
        ev = self.manifest.get("evaluator")
        return self.path(ev["file"]) if ev else None

    @property
    def checkpoint(self) -> Path | None:
        """The generator checkpoint the bundle came from, when it is still where it was."""
        ckpt = self.manifest.get("provenance", {}).get("checkpoint", {})
        path = ckpt.get("path")
        if not path:
            return None
        p = Path(path)
        if not p.is_absolute():
            p = (self.root / p).resolve()
        return p if p.is_file() else None

    def golden_sets(self) -> list[Path]:
        return [self.path(s["dir"]) for s in self.manifest["golden"]["sets"]]


def safe_relative(relative: str) -> PurePosixPath:
    """A manifest path as a relative path that stays inside the bundle, or a BundleError."""
    p = PurePosixPath(relative)
    if p.is_absolute() or ".." in p.parts or relative.startswith(("/", "\\")) or "\\" in relative:
        raise BundleError(f"manifest path {relative!r} leaves the bundle; a bundle may only "
                          "name files inside its own folder — the manifest was tampered with")
    return p


def load_bundle(root: str | Path, *, check_hashes: bool = True) -> Bundle:
    """Read ``root/manifest.json``; check its schema, paths and (by default) every sha256."""
    root = Path(root)
    mpath = root / MANIFEST
    if not mpath.is_file():
        what = "does not exist" if not root.exists() else f"has no {MANIFEST}"
        raise BundleError(f"{root} {what}: expected a bundle made by `edgegen export`")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{mpath} is not valid JSON ({exc}); re-export the bundle") from exc
    schema = manifest.get("schema") if isinstance(manifest, dict) else None
    if schema != SCHEMA:
        raise BundleError(f"{mpath} has schema {schema!r}; this edgegen reads {SCHEMA!r} — "
                          "upgrade edgegen or re-export the bundle")
    for key in ("generator", "variants", "files", "latent", "postprocess", "golden"):
        if key not in manifest:
            raise BundleError(f"{mpath} lacks the {key!r} section required by {SCHEMA}")
    bundle = Bundle(root, manifest)
    for rel in manifest["files"]:
        safe_relative(rel)
    for v in manifest["variants"].values():
        _listed(bundle, v["file"])
    if manifest.get("evaluator"):
        _listed(bundle, manifest["evaluator"]["file"])
    if manifest.get("sampler"):
        try:
            denoisers = list(manifest["sampler"]["denoiser"]["variants"].values())
        except (KeyError, TypeError, AttributeError) as exc:
            raise BundleError(f"{mpath}: the sampler section lists no denoiser variants "
                              f"({exc!r}); re-export the bundle") from exc
        for v in denoisers:
            _listed(bundle, v["file"])
    if check_hashes:
        verify_files(bundle)
    return bundle


def _listed(bundle: Bundle, rel: str) -> None:
    safe_relative(rel)
    if rel not in bundle.manifest["files"]:
        raise BundleError(f"{bundle.root / MANIFEST} names {rel!r} but does not list its "
                          "sha256 under 'files'; the manifest was edited — re-export")


def verify_files(bundle: Bundle) -> None:
    """Every listed file exists with its recorded size and sha256; nothing unlisted is there."""
    files: dict[str, dict[str, Any]] = bundle.manifest["files"]
    for rel, meta in files.items():
        path = bundle.path(rel)
        if not path.is_file():
            raise BundleError(f"{path} is listed in the manifest but missing; the bundle is "
                              "incomplete — re-export or copy it again")
        if path.stat().st_size != meta.get("bytes"):
            raise BundleError(f"{path} is {path.stat().st_size} bytes, the manifest says "
                              f"{meta.get('bytes')}: the file was changed or truncated")
        digest = sha256_file(path)
        if digest != meta.get("sha256"):
            raise BundleError(f"{path} has sha256 {digest[:16]}…, the manifest says "
                              f"{str(meta.get('sha256'))[:16]}…: the file was changed after "
                              "export — re-export the bundle or restore the file")
    for path in bundle.root.rglob("*"):
        rel = path.relative_to(bundle.root).as_posix()
        if path.is_file() and rel != MANIFEST and rel not in files \
                and not _is_cache(rel):
            raise BundleError(f"{path} is in the bundle but not in its manifest; remove it or "
                              "re-export the bundle")


def _is_cache(rel: str) -> bool:
    """Caches that tools may add to a bundle after export (TensorRT engines and timing)."""
    return rel.startswith(("cache/", "trt_cache/"))


def file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def list_files(root: Path) -> dict[str, dict[str, Any]]:
    """The ``files`` section for everything under ``root`` except the manifest itself."""
    return {p.relative_to(root).as_posix(): file_entry(p)
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST}
