"""Bundles: the unit of deployment, and the manifest that describes and protects it.

``load_bundle`` trusts nothing it has not checked, in this order:

1. ``manifest.json`` — a regular file (not a link), read with a size limit and validated against
   the one JSON Schema (``edgegen.runtime.manifest``) before any field is used;
2. the names it gives — every model, golden set and evaluator it names is listed under
   ``files`` (the schema already refused absolute paths, ``..``, ``\\`` and control characters);
3. the folder — only regular files and folders: no symbolic link anywhere (a link can point
   outside the bundle whatever its name), no fifo or device, no file the manifest does not list
   (besides ``manifest.json``, the signature ``bundle.sig`` and the ``cache/``, ``trt_cache/``
   folders that tools add after export);
4. with a public key, the signature (``edgegen.runtime.signature``: OpenSSF model signing over
   every file, the manifest included);
5. every listed file's size and sha256.

Then **hash what you load**: ``Bundle.read`` reads a file once, checks its size and sha256
against the manifest and returns the bytes; sessions are created from those bytes
(``make_session`` accepts them), so a file replaced after ``load_bundle`` is refused, never used.
Imports nothing heavier than the standard library and jsonschema.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from edgegen.runtime.errors import BundleError
from edgegen.runtime.fileio import sha256_file
from edgegen.runtime.manifest import MAX_BYTES, SCHEMA, parse_manifest
from edgegen.runtime.signature import CACHE_DIRS, SIGNATURE, signature_status, verify_signature

__all__ = ["CACHE_DIRS", "MANIFEST", "PRECISIONS", "SCHEMA", "SIGNATURE", "VARIANT_FILES",
           "Bundle", "file_entry", "list_files", "load_bundle", "safe_relative", "verify_files"]

MANIFEST = "manifest.json"
PRECISIONS = ("fp32", "fp16", "int8")  # the variants export can make, in this order
VARIANT_FILES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Bundle:
    """A bundle folder whose manifest has been read and, unless told otherwise, checked."""

    root: Path
    manifest: dict[str, Any]
    # {"status": "unsigned" | "signed, not checked" | "verified", ...} (see runtime.signature)
    signature: dict[str, Any] = field(default_factory=lambda: {"status": "not checked"})

    def path(self, relative: str) -> Path:
        """The absolute path of a file named in the manifest (refusing escapes)."""
        return self.root / safe_relative(relative)

    def read(self, relative: str) -> bytes:
        """The bytes of a listed file, read once and checked against the manifest's size and
        sha256 — what every session and golden reader uses, so that what was checked is what
        runs. A file changed since ``load_bundle`` is a BundleError, never used."""
        meta = self.manifest["files"].get(relative)
        if meta is None:
            raise BundleError(f"{self.root / MANIFEST} does not list {relative!r} under 'files'; "
                              "a bundle reader loads only listed files — re-export")
        data = _read_regular(self.root, relative, limit=int(meta["bytes"]) + 1)
        digest = hashlib.sha256(data).hexdigest()
        if len(data) != meta["bytes"] or digest != meta["sha256"]:
            raise BundleError(f"{self.path(relative)} changed since the bundle was checked: "
                              f"{len(data):,} bytes, sha256 {digest[:16]}…; the manifest says "
                              f"{meta['bytes']:,} bytes, {meta['sha256'][:16]}… — refusing to "
                              "load it (restore the file or re-export the bundle)")
        return data

    @property
    def variants(self) -> dict[str, dict[str, Any]]:
        return self.manifest["variants"]

    def variant_file(self, name: str) -> str:
        """The bundle-relative file of a variant (a BundleError naming what the bundle has)."""
        if name not in self.variants:
            raise BundleError(f"{self.root} has no {name!r} variant; it has "
                              f"{', '.join(self.variants)} (export with --precision {name})")
        return self.variants[name]["file"]

    def variant_path(self, name: str) -> Path:
        return self.path(self.variant_file(name))

    def model_file(self, variant: str, provider: str) -> str:
        """The file that serves ``variant`` on ``provider``: TensorRT makes its fp16 engine from
        the fp32 graph (fp16 is a builder flag there); every other pair uses the variant's file."""
        if provider == "tensorrt" and variant == "fp16" and "fp32" in self.variants:
            return self.variant_file("fp32")
        return self.variant_file(variant)

    def model_path(self, variant: str, provider: str) -> Path:
        return self.path(self.model_file(variant, provider))

    def model_bytes(self, variant: str, provider: str = "cpu") -> bytes:
        """The checked bytes of the model serving ``variant`` on ``provider`` (``read``)."""
        return self.read(self.model_file(variant, provider))

    @property
    def sampler(self) -> dict[str, Any] | None:
        """The ``sampler`` section of an iterative family's bundle (cflow), else None."""
        return self.manifest.get("sampler")

    def denoiser_file(self, precision: str) -> str:
        """The bundle-relative one-call network of an iterative sampler (``denoiser.onnx`` and
        its variants)."""
        if not self.sampler:
            raise BundleError(f"{self.root} ({self.manifest['generator'].get('architecture')}) "
                              "has no iterative sampler and no denoiser: its model.onnx draws "
                              "an image in one call")
        variants = self.sampler["denoiser"]["variants"]
        if precision not in variants:
            raise BundleError(f"{self.root} has no {precision!r} denoiser; it has "
                              f"{', '.join(variants)} (export with --precision {precision})")
        return variants[precision]["file"]

    def denoiser_path(self, precision: str) -> Path:
        return self.path(self.denoiser_file(precision))

    def denoiser_bytes(self, precision: str) -> bytes:
        """The checked bytes of the ``precision`` denoiser (``read``)."""
        return self.read(self.denoiser_file(precision))

    @property
    def ort_format(self) -> dict[str, Any] | None:
        """The ``ort_format`` section (``edgegen export --ort-format``), else None."""
        return self.manifest.get("ort_format")

    def require_ort_format(self) -> dict[str, Any]:
        """The ``ort_format`` section, or a BundleError saying how to get one."""
        section = self.ort_format
        if not section:
            raise BundleError(f"{self.root} has no ORT-format models (its manifest has no "
                              "ort_format section); export it with `edgegen export ... "
                              "--ort-format`, or load its ONNX models (format='onnx')")
        return section

    def ort_file(self, onnx_file: str) -> str:
        """The bundle-relative ORT-format file of the ONNX model ``onnx_file`` (a BundleError
        when the bundle has no ORT-format models, or none for that file)."""
        section = self.require_ort_format()
        if onnx_file not in section["models"]:
            raise BundleError(f"{self.root}: {onnx_file} has no ORT-format file; the bundle "
                              f"converted {', '.join(section['models'])} — re-export it with "
                              "--ort-format")
        return section["models"][onnx_file]

    @property
    def z_dim(self) -> int:
        return int(self.manifest["generator"]["z_dim"])

    @property
    def n_classes(self) -> int:
        return int(self.manifest["generator"]["n_classes"])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image: ``generator.image_shape``, else the image output's fixed
        dimensions, else MNIST's (1, 28, 28) (bundles from before the field existed)."""
        gen = self.manifest["generator"]
        if gen.get("image_shape"):
            c, h, w = gen["image_shape"]
            return int(c), int(h), int(w)
        dims = (gen.get("outputs") or [{}])[0].get("shape", [])[1:]
        if len(dims) == 3 and all(isinstance(d, int) for d in dims):
            return int(dims[0]), int(dims[1]), int(dims[2])
        return 1, 28, 28

    @property
    def label_names(self) -> list[str]:
        """Class ``k``'s name (``generator.labels``, else ``str(k)``)."""
        return list(self.manifest["generator"].get("labels")
                    or [str(k) for k in range(self.n_classes)])

    @property
    def evaluator_file(self) -> str | None:
        ev = self.manifest.get("evaluator")
        return ev["file"] if ev else None

    @property
    def evaluator_path(self) -> Path | None:
        rel = self.evaluator_file
        return self.path(rel) if rel else None

    def evaluator_bytes(self) -> bytes | None:
        """The checked bytes of ``evaluator.onnx`` (None when the bundle has no evaluator)."""
        rel = self.evaluator_file
        return self.read(rel) if rel else None

    @property
    def checkpoint(self) -> Path | None:
        """The generator checkpoint the bundle came from, when it is still where it was."""
        ckpt = self.manifest.get("provenance", {}).get("checkpoint", {})
        path = ckpt.get("path")
        if not path:
            return None
        p = Path(path)
        try:
            if not p.is_absolute():
                p = (self.root / p).resolve()
            return p if p.is_file() else None
        except (OSError, ValueError):  # a name too long for this file system
            return None

    def golden_sets(self) -> list[Path]:
        return [self.path(s["dir"]) for s in self.manifest["golden"]["sets"]]

    def golden_files(self, index: int) -> tuple[list[str], str]:
        """(``input_K.pb`` files in K order, ``output_0.pb``) of golden set ``index``, as
        bundle-relative names (read them with ``read``)."""
        directory = self.manifest["golden"]["sets"][index]["dir"].rstrip("/") + "/"
        inputs = []
        for rel in self.manifest["files"]:
            name = rel[len(directory):] if rel.startswith(directory) else ""
            if name.startswith("input_") and name.endswith(".pb") and name[6:-3].isdigit():
                inputs.append((int(name[6:-3]), rel))
        output = directory + "output_0.pb"
        if not inputs or output not in self.manifest["files"]:
            raise BundleError(f"{self.root / MANIFEST}: golden set {directory} lists no "
                              "input_K.pb / output_0.pb files; re-export the bundle")
        return [rel for _, rel in sorted(inputs)], output


def safe_relative(relative: str) -> PurePosixPath:
    """A manifest path as a relative path that stays inside the bundle, or a BundleError."""
    p = PurePosixPath(relative)
    if p.is_absolute() or ".." in p.parts or relative.startswith(("/", "\\")) or "\\" in relative \
            or "\x00" in relative:
        raise BundleError(f"manifest path {relative!r} leaves the bundle; a bundle may only "
                          "name files inside its own folder — the manifest was tampered with")
    return p


# --------------------------------------------------------------------------- reading files


def _open_regular(root: Path, relative: str) -> int:
    """An fd of ``root/relative``, refusing a symbolic link at any level below ``root`` and
    anything but a regular file (a fifo would block the reader forever)."""
    parts = safe_relative(relative).parts
    here = root
    for part in parts[:-1]:
        here = here / part
        try:
            if stat.S_ISLNK(os.lstat(here).st_mode):
                raise BundleError(f"{here} is a symbolic link; a bundle holds no links (one can "
                                  "point outside the bundle) — re-export or copy it again")
        except FileNotFoundError:
            break  # reported below as a missing file
    path = root.joinpath(*parts)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise BundleError(f"{path} is listed in the manifest but missing; the bundle is "
                          "incomplete — re-export or copy it again") from None
    except OSError as exc:
        if os.path.islink(path):
            raise BundleError(f"{path} is a symbolic link (to {os.readlink(path)!r}); a bundle "
                              "holds no links (one can point outside the bundle) — replace it "
                              "by the file or re-export") from None
        raise BundleError(f"{path} cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BundleError(f"{path} is not a regular file; a bundle holds only files and folders "
                          "— re-export or copy it again")
    return fd


def _read_regular(root: Path, relative: str, limit: int) -> bytes:
    """At most ``limit`` bytes of a regular file (the caller compares the length)."""
    fd = _open_regular(root, relative)
    with os.fdopen(fd, "rb") as fh:
        return fh.read(limit)


def _hash_regular(root: Path, relative: str) -> tuple[int, str]:
    """(size, sha256) of a regular file, streamed."""
    fd = _open_regular(root, relative)
    h = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
            size += len(block)
    return size, h.hexdigest()


# --------------------------------------------------------------------------- loading


def load_bundle(root: str | Path, *, check_hashes: bool = True,
                public_key: str | Path | None = None) -> Bundle:
    """Read and check ``root`` (see the module docstring); with ``public_key`` (a PEM file) an
    unsigned bundle or one whose files differ from what was signed is a BundleError."""
    root = Path(root)
    if not root.is_dir():
        what = "does not exist" if not os.path.lexists(root) else "is not a folder"
        raise BundleError(f"{root} {what}: expected a bundle made by `edgegen export`")
    mpath = root / MANIFEST
    if not os.path.lexists(mpath):
        raise BundleError(f"{root} has no {MANIFEST}: expected a bundle made by `edgegen export`")
    manifest = parse_manifest(_read_regular(root, MANIFEST, limit=MAX_BYTES + 1), mpath)
    bundle = Bundle(root, manifest)
    _check_names(bundle)
    found = _scan(root)
    _check_listing(bundle, found)
    signature = (verify_signature(root, public_key) if public_key is not None
                 else signature_status(root))
    if check_hashes:
        _check_hashes(bundle)
    return Bundle(root, manifest, signature)


def _named_files(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, path) of every file the manifest names outside ``files``."""
    out = [(f"variants.{k}.file", v["file"]) for k, v in manifest["variants"].items()]
    gen = manifest["generator"]
    if gen.get("file"):
        out.append(("generator.file", gen["file"]))
    if manifest.get("evaluator"):
        out.append(("evaluator.file", manifest["evaluator"]["file"]))
    for where, den in (("denoiser", manifest.get("denoiser")),
                       ("sampler.denoiser", (manifest.get("sampler") or {}).get("denoiser")),
                       ("generator.sampler.denoiser",
                        (gen.get("sampler") or {}).get("denoiser"))):
        if den:
            if den.get("file"):
                out.append((f"{where}.file", den["file"]))
            out += [(f"{where}.variants.{k}.file", v["file"])
                    for k, v in (den.get("variants") or {}).items()]
    for key, rel in (manifest["golden"].get("polygraphy") or {}).items():
        out.append((f"golden.polygraphy.{key}", rel))
    ort_format = manifest.get("ort_format")
    if ort_format:
        out.append(("ort_format.required_operators", ort_format["required_operators"]))
        for onnx_file, ort_file in ort_format["models"].items():
            out += [("ort_format.models", onnx_file), (f"ort_format.models.{onnx_file}", ort_file)]
    return out


def _check_names(bundle: Bundle) -> None:
    """Every file the manifest names is listed with its sha256; golden sets have files; the
    label names match the class count."""
    m, where = bundle.manifest, bundle.root / MANIFEST
    for key, rel in _named_files(m):
        if rel not in m["files"]:
            raise BundleError(f"{where} names {rel!r} ({key}) but does not list its sha256 "
                              "under 'files'; the manifest was edited — re-export")
    for i in range(len(m["golden"]["sets"])):
        bundle.golden_files(i)
    labels = m["generator"].get("labels")
    if labels is not None and len(labels) != m["generator"]["n_classes"]:
        raise BundleError(f"{where}: generator.labels has {len(labels)} names for "
                          f"{m['generator']['n_classes']} classes; re-export the bundle")


def _scan(root: Path) -> set[str]:
    """Every regular file under ``root`` (bundle-relative), refusing links and special files;
    the cache folders are not entered."""
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        top = Path(dirpath) == root
        for name in sorted(dirnames + filenames):
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            mode = os.lstat(full).st_mode
            if stat.S_ISLNK(mode):
                raise BundleError(f"{full} is a symbolic link (to {os.readlink(full)!r}); a "
                                  "bundle holds only regular files and folders — a link can "
                                  "point outside it. Replace it by the file or re-export")
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                raise BundleError(f"{full} is not a regular file (a fifo, socket or device); "
                                  "remove it — a bundle holds only files and folders")
            found.add(rel)
        dirnames[:] = sorted(d for d in dirnames if not (top and d in CACHE_DIRS))
    return found


def _check_listing(bundle: Bundle, found: set[str]) -> None:
    files = bundle.manifest["files"]
    for rel in sorted(found - set(files) - {MANIFEST, SIGNATURE}):
        raise BundleError(f"{bundle.root / rel} is in the bundle but not in its manifest; "
                          "remove it or re-export the bundle")
    for rel in sorted(set(files) - found):
        if rel in (MANIFEST, SIGNATURE) or rel.split("/")[0] in CACHE_DIRS:
            raise BundleError(f"{bundle.root / MANIFEST} lists {rel!r}, a name the manifest "
                              "cannot cover; the manifest was edited — re-export")
        raise BundleError(f"{bundle.root / rel} is listed in the manifest but missing; the "
                          "bundle is incomplete — re-export or copy it again")


def _check_hashes(bundle: Bundle) -> None:
    for rel, meta in sorted(bundle.manifest["files"].items()):
        path = bundle.path(rel)
        size, digest = _hash_regular(bundle.root, rel)
        if size != meta["bytes"]:
            raise BundleError(f"{path} is {size} bytes, the manifest says {meta['bytes']}: the "
                              "file was changed or truncated")
        if digest != meta["sha256"]:
            raise BundleError(f"{path} has sha256 {digest[:16]}…, the manifest says "
                              f"{meta['sha256'][:16]}…: the file was changed after export — "
                              "re-export the bundle or restore the file")


def verify_files(bundle: Bundle) -> None:
    """Every listed file exists with its recorded size and sha256; nothing unlisted, no link and
    no special file is there."""
    _check_listing(bundle, _scan(bundle.root))
    _check_hashes(bundle)


# --------------------------------------------------------------------------- writing


def file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def list_files(root: Path) -> dict[str, dict[str, Any]]:
    """The ``files`` section for everything under ``root`` except the manifest and signature."""
    return {p.relative_to(root).as_posix(): file_entry(p)
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).as_posix() not in (MANIFEST, SIGNATURE)}


def replace_refusal(path: str | Path) -> str | None:
    """Why an existing ``path`` must not be replaced by a new bundle, or None when it may be:
    an empty folder, or an edgegen bundle — a folder whose readable ``manifest.json`` has schema
    ``edgegen.bundle/1`` and lists every file in it (so no file of anyone else is in there)."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        return "it is not a folder (a file or a link)"
    entries = list(path.iterdir())
    if not entries:
        return None
    if not os.path.lexists(path / MANIFEST):
        return (f"it is not an edgegen bundle (no {MANIFEST}; it holds "
                f"{sorted(e.name for e in entries)[0]}…)")
    try:
        data = _read_regular(path, MANIFEST, limit=MAX_BYTES + 1)
        manifest = parse_manifest(data, path / MANIFEST)
        found = _scan(path)
    except BundleError as exc:
        return f"it is not an edgegen bundle ({exc})"
    unlisted = sorted(found - set(manifest["files"]) - {MANIFEST, SIGNATURE})
    if unlisted:
        return (f"it holds files its manifest does not list ({', '.join(unlisted[:5])}"
                f"{' …' if len(unlisted) > 5 else ''}): they are not part of the bundle")
    return None
