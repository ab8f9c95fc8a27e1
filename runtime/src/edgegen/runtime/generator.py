"""The torch-free runtime: load a bundle, trust it, get the same digit for (label, seed) anywhere.

>>> from edgegen.runtime import Generator
>>> g = Generator.load("bundles/cdcgan", provider="cpu")   # schema, paths, every sha256
>>> g.generate([3, 1, 4], seed=42)                         # uint8 [3, 28, 28]

Which latent a sample gets (the contract the Node.js and browser examples replay):

* ``seed=s``: sample ``i`` of an ``N``-label request is row ``i`` of ``latent(s, N, z_dim)``.
  The latent is counter-based, so row ``i`` does not depend on ``N``: ``generate([7], seed=s)``
  and ``generate([7, 2, 5], seed=s)[0]`` start from the same ``z``.
* ``seeds=[s0, s1, ...]``: sample ``i`` is row 0 of ``latent(s_i, 1, z_dim)``, i.e. the sample
  ``generate([label], seed=s_i)`` would draw. Use it when each sample must be addressable alone.
* ``z=array``: the caller's own latents (interpolation and the like); no guard (nothing to redraw).
* ``truncation=psi`` scales the latent by ``float32(psi)`` in float32; ``guard=True`` redraws
  samples the bundle's evaluator rejects along ``edgegen.runtime.guard``'s documented seed sequence.
* ``steps=N, guidance=w`` (iterative families, cflow): the sampler's settings. The exported ones
  (or none given) run ``model.onnx``, where they are unrolled; any other setting runs
  ``edgegen.runtime.sampler``'s loop over the same precision's ``denoiser.onnx``. For the
  exported setting the loop and ``model.onnx`` agree within the bundle's recorded
  ``sampler.runtime_loop`` (max |Δ| ≤ 1e-4 by export's check). A family without a sampler
  refuses ``steps`` and ``guidance``.

``Generator.load(path, format="ort")`` runs the bundle's ORT-format models instead (a bundle
exported with ``--ort-format``: ``manifest.ort_format.models`` maps each ONNX file to its
``.ort``), read through the same checked reads; they reproduce the goldens within the fp32
tolerance, not byte for byte (ONNX Runtime picks other CPU kernels for them).

Requests run through ONNX Runtime in chunks of ``batch_size``. The latent never depends on the
chunking, but ONNX Runtime's float arithmetic may differ in the last bits between batch sizes, so
a pixel whose value sits on a rounding boundary of the uint8 rule can rarely move by one (the test
suite measures and reports how often). One ``Generator`` may be shared by threads: ONNX Runtime
sessions are thread-safe for ``run``, and the lazily created per-variant sessions and the guard
counters are guarded by locks.

Imports numpy and onnxruntime only (through edgegen's numpy-only modules): ``import
edgegen.runtime`` never imports torch, and the package works with only those two installed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.runtime.bundle import Bundle, load_bundle
from edgegen.runtime.errors import BundleError, ProviderError, RuntimeInputError
from edgegen.runtime.guard import GuardResult, guarded_generate, guarded_generate_seeds, softmax
from edgegen.runtime.inputs import (
    OUTPUTS,
    check_choice,
    check_flag,
    check_guidance,
    check_labels,
    check_latents,
    check_seed,
    check_seeds,
    check_steps,
    check_truncation,
)
from edgegen.runtime.latent import ALGORITHM, latent, latent_for_seeds, retry_seed, truncate
from edgegen.runtime.postprocess import RULE, to_pixels
from edgegen.runtime.providers import ProviderSpec, make_session, ort
from edgegen.runtime.sampler import DENOISER_IO, SamplerSpec, sample
from edgegen.runtime.sessions import run_evaluator, run_generator

__all__ = ["FORMATS", "Generation", "Generator", "GuardStats"]

FORMATS = ("onnx", "ort")  # Generator.load(format=...): the bundle's ONNX or ORT-format models

@dataclass(frozen=True)
class Generation:
    """One request's images and where each came from (enough to replay it in any language)."""

    images: np.ndarray  # uint8 [N, H, W] ([N, H, W, 3] for RGB) or float32 [N, C, H, W]
    labels: np.ndarray  # int64 [N]
    seeds: np.ndarray | None  # uint64 [N]: the stream each returned sample was drawn from
    rows: np.ndarray | None  # int64 [N]: its row in that stream (None for caller-given z)
    variant: str
    accepted: np.ndarray | None = None  # bool [N] when guarded
    attempts: np.ndarray | None = None  # int64 [N] when guarded: 0 = first draw accepted
    prob: np.ndarray | None = None  # float32 [N] when guarded: evaluator's p(requested label)
    predicted: np.ndarray | None = None  # int64 [N] when guarded: evaluator's digit
    steps: int | None = None  # iterative families: the sampler settings used
    guidance: float | None = None
    model: str | None = None  # the file that ran: model.onnx (unrolled) or the denoiser loop


@dataclass(frozen=True)
class GuardStats:
    """Totals over every guarded request of one ``Generator`` since it was loaded."""

    requests: int = 0
    samples: int = 0
    fired: int = 0  # samples that needed at least one redraw
    rejected: int = 0  # samples still not accepted after the last redraw
    redraws: int = 0  # sum of attempts

    @property
    def accept_rate(self) -> float:
        return 1.0 - self.rejected / self.samples if self.samples else float("nan")


class Generator:
    """A verified bundle and its ONNX Runtime sessions (one per variant, created on first use)."""

    def __init__(self, bundle: Bundle, spec: ProviderSpec, batch_size: int = 64,
                 format: str = "onnx") -> None:
        """Use ``Generator.load``; this takes a bundle that ``load_bundle`` already checked."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise RuntimeInputError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.format = check_choice(format, "format", FORMATS)
        if self.format == "ort":
            _check_ort_format(bundle, spec)
        self.bundle = bundle
        self.spec = spec
        self.batch_size = batch_size
        self._io = _generator_io(bundle)
        self._sampler = (SamplerSpec.from_manifest(bundle.manifest, bundle.root)
                         if bundle.sampler else None)
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._stats = GuardStats()
        self._session(self.default_variant)  # fail now on a provider or model problem

    @classmethod
    def load(cls, path: str | Path, provider: str | ProviderSpec = "cpu", *,
             batch_size: int = 64, public_key: str | Path | None = None,
             format: str = "onnx") -> Generator:
        """Verify ``path`` (schema, no escaping paths or links, every sha256) and open it on
        ``provider`` (``cpu``, ``cuda``, ``tensorrt``, ``tensorrt-rtx`` — the plugin EP —,
        ``openvino`` — the OpenVINO runtime, which this imports only then — or a
        ``ProviderSpec``; an unavailable one
        raises ``ProviderError`` rather than falling back). With ``public_key`` (a PEM file) the
        bundle must carry a valid ``bundle.sig`` by that key over exactly its files: an unsigned
        or differing bundle raises ``BundleError`` (this needs ``model-signing``). A provider
        given by name is opened for bitwise repeatable results (``deterministic=True``: on
        CUDA, cuDNN's autotuned convolution algorithms differ from run to run by ~5e-7); pass a
        ``ProviderSpec`` to trade that for speed. Models are read, hash-checked and handed to
        ONNX Runtime as bytes when first used: a file replaced after ``load`` is refused.
        ``format="ort"`` loads each model's ORT-format file instead (``edgegen export
        --ort-format``; the manifest's ``ort_format.models``), through the same checked reads;
        a bundle without them raises ``BundleError``, and so does an onnxruntime older than the
        converter that wrote them."""
        check_choice(format, "format", FORMATS)
        spec = (provider if isinstance(provider, ProviderSpec)
                else ProviderSpec(name=provider, deterministic=True))
        if not isinstance(spec.name, str):
            raise ProviderError(f"provider must be a name such as 'cpu', got {provider!r}")
        spec.ep  # noqa: B018 - raises ProviderError for an unknown name before any file is read
        bundle = load_bundle(path, public_key=public_key)
        _check_contract(bundle)
        return cls(bundle, spec, batch_size, format)

    # -- what the bundle offers ------------------------------------------------------------
    @property
    def z_dim(self) -> int:
        return self.bundle.z_dim

    @property
    def n_classes(self) -> int:
        return self.bundle.n_classes

    @property
    def variants(self) -> list[str]:
        return list(self.bundle.variants)

    @property
    def default_variant(self) -> str:
        return "fp32" if "fp32" in self.bundle.variants else self.variants[0]

    @property
    def signature(self) -> dict[str, Any]:
        """``{"status": "verified" | "signed, not checked" | "unsigned", ...}``."""
        return dict(self.bundle.signature)

    @property
    def sampler(self) -> SamplerSpec | None:
        """The exported sampler settings of an iterative family (cflow), else None."""
        return self._sampler

    @property
    def has_evaluator(self) -> bool:
        return self.bundle.evaluator_path is not None

    @property
    def guard_stats(self) -> GuardStats:
        with self._lock:
            return self._stats

    # -- generation ---------------------------------------------------------------------------
    def generate(self, labels: Any, seed: Any = None, *, seeds: Any = None, z: Any = None,
                 truncation: Any = None, variant: Any = None, guard: Any = False,
                 output: Any = "uint8", steps: Any = None, guidance: Any = None) -> np.ndarray:
        """uint8 ``[N, H, W]`` (RGB bundles: ``[N, H, W, 3]``; ``output="float"``: float32
        ``[N, C, H, W]`` in [-1, 1]).

        Give exactly one of ``seed`` (sample ``i`` = row ``i`` of the seed's stream), ``seeds``
        (one seed per label) or ``z`` (float ``[N, z_dim]``). ``variant`` names one of the
        bundle's models (``fp32`` when ``None``). ``steps`` and ``guidance`` set an iterative
        family's sampler (see the module docstring). See ``run`` for the guard's record.
        """
        return self.run(labels, seed, seeds=seeds, z=z, truncation=truncation, variant=variant,
                        guard=guard, output=output, steps=steps, guidance=guidance).images

    def run(self, labels: Any, seed: Any = None, *, seeds: Any = None, z: Any = None,
            truncation: Any = None, variant: Any = None, guard: Any = False,
            output: Any = "uint8", steps: Any = None, guidance: Any = None) -> Generation:
        """Like ``generate``, returning a ``Generation`` that records each sample's stream and,
        with ``guard=True``, the evaluator's verdict and the number of redraws."""
        loop = self._loop(steps, guidance)
        y = check_labels(labels, self.n_classes)
        psi = check_truncation(truncation)
        variant = check_choice(self.default_variant if variant is None else variant,
                               "variant", self.variants)
        output = check_choice(output, "output", OUTPUTS)
        guarded = check_flag(guard, "guard")
        given = [name for name, v in (("seed", seed), ("seeds", seeds), ("z", z)) if v is not None]
        if len(given) != 1:
            raise RuntimeInputError("give exactly one of seed=…, seeds=[…] or z=…; got "
                                    f"{', '.join(given) or 'none'} (e.g. seed=42)")
        if guarded and z is not None:
            raise RuntimeInputError("guard=True needs seeds to redraw from; it cannot be used "
                                    "with caller-given z")
        if guarded and not self.has_evaluator:
            raise RuntimeInputError(f"guard=True needs an evaluator, and {self.bundle.root} has "
                                    "none: export with an evaluator run (edgegen train-evaluator)"
                                    " or call without guard")
        n = len(y)
        if seed is not None:
            s = check_seed(seed)
            stream, rows = np.full(n, s, dtype=np.uint64), np.arange(n, dtype=np.int64)
        elif seeds is not None:
            stream, rows = np.array(check_seeds(seeds, n), np.uint64), np.zeros(n, np.int64)
        else:
            stream, rows = None, None
        if guarded:
            return self._guarded(y, stream, rows, psi, variant, output, seeds is not None, loop)
        if seed is not None:
            zz = latent(int(stream[0]), n, self.z_dim)
        elif seeds is not None:
            zz = latent_for_seeds([int(v) for v in stream], self.z_dim)
        else:
            zz = check_latents(z, n, self.z_dim)
        images = self._forward(variant, truncate(zz, psi), y, loop)
        return Generation(images=_output(images, output), labels=y, seeds=stream, rows=rows,
                          variant=variant, **self._settings(variant, loop))

    def _loop(self, steps: Any, guidance: Any) -> tuple[int, float] | None:
        """``None``: run model.onnx (a single-pass family, or the exported sampler settings);
        otherwise the (steps, guidance) the denoiser loop must run."""
        if steps is None and guidance is None:
            return None
        if self._sampler is None:
            raise RuntimeInputError(
                f"steps and guidance set an iterative sampler, and {self.bundle.root} "
                f"({self.bundle.manifest['generator'].get('architecture')}) has none: its "
                "model draws an image in one call — call generate() without them")
        s = self._sampler
        n = s.steps if steps is None else check_steps(steps)
        w = s.guidance if guidance is None else check_guidance(guidance)
        return None if (n, w) == (s.steps, s.guidance) else (n, w)

    def _settings(self, variant: str, loop: tuple[int, float] | None) -> dict[str, Any]:
        if self._sampler is None:
            return {}
        if loop is None:
            return {"steps": self._sampler.steps, "guidance": self._sampler.guidance,
                    "model": self.model_file(variant)}
        return {"steps": loop[0], "guidance": loop[1],
                "model": Path(self.model_file(f"denoiser:{self._precision(variant)}")).name}

    def _precision(self, variant: str) -> str:
        return str(self.bundle.variants[variant].get("precision", variant))

    def _guarded(self, y: np.ndarray, stream: np.ndarray, rows: np.ndarray, psi: float | None,
                 variant: str, output: str, per_sample: bool,
                 loop: tuple[int, float] | None) -> Generation:
        def gen(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
            return self._forward(variant, z, labels, loop)

        if per_sample:
            res = guarded_generate_seeds(gen, self._classify, y, [int(v) for v in stream],
                                         self.z_dim, truncation=psi)
        else:
            res = guarded_generate(gen, self._classify, y, int(stream[0]), self.z_dim,
                                   truncation=psi)
        self._record(res)
        used = np.array([retry_seed(int(s), int(a)) for s, a in zip(stream, res.attempts)],
                        dtype=np.uint64)
        return Generation(images=_output(res.images, output), labels=y, seeds=used, rows=rows,
                          variant=variant, accepted=res.accepted, attempts=res.attempts,
                          prob=res.prob, predicted=res.predicted, **self._settings(variant, loop))

    def _record(self, res: GuardResult) -> None:
        with self._lock:
            s = self._stats
            self._stats = GuardStats(requests=s.requests + 1, samples=s.samples + len(res.accepted),
                                     fired=s.fired + res.fired, rejected=s.rejected + res.rejected,
                                     redraws=s.redraws + int(res.attempts.sum()))

    # -- ONNX Runtime -----------------------------------------------------------------------
    def model_file(self, key: str) -> str:
        """The bundle-relative file a variant (or ``"evaluator"``, ``"denoiser:<precision>"``)
        runs from: its ONNX model, or that model's ``.ort`` file with ``format="ort"``."""
        if key == "evaluator":
            name = self.bundle.evaluator_file
            if name is None:
                raise BundleError(f"{self.bundle.root} has no evaluator")
        elif key.startswith("denoiser:"):
            name = self.bundle.denoiser_file(key.split(":", 1)[1])
        else:
            name = self.bundle.variant_file(key)
        return self.bundle.ort_file(name) if self.format == "ort" else name

    def _session(self, key: str) -> Any:
        """The session for a variant (or ``"evaluator"``), created once under the lock."""
        session = self._sessions.get(key)  # fast path: a dict read is atomic
        if session is not None:
            return session
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                # read once, sha256 checked, the session made from those very bytes
                name = self.model_file(key)
                path = self.bundle.path(name)
                session = make_session(self.bundle.read(name), self.spec, name=str(path))
                if key.startswith("denoiser:"):
                    _check_session(session, list(DENOISER_IO[:3]), DENOISER_IO[3], path)
                elif key != "evaluator":
                    _check_session(session, list(self._io[:2]), self._io[2], path)
                self._sessions[key] = session
            return session

    def _forward(self, variant: str, z: np.ndarray, labels: np.ndarray,
                 loop: tuple[int, float] | None = None) -> np.ndarray:
        """float32 ``[N, C, H, W]``, run in chunks of ``batch_size``: model.onnx, or the
        sampler loop over the variant's denoiser for ``loop = (steps, guidance)``."""
        if loop is None:
            session = self._session(variant)
            out = _run(lambda: run_generator(session, z, labels, self.batch_size, self._io),
                       variant)
        else:
            assert self._sampler is not None
            spec = self._sampler
            den = self._session(f"denoiser:{self._precision(variant)}")
            out = _run(lambda: sample(den, z, labels, steps=loop[0], guidance=loop[1],
                                      null_label=spec.null_label, image_shape=spec.image_shape,
                                      batch=self.batch_size), f"{variant} denoiser")
        if not np.isfinite(out).all():
            raise BundleError(f"the {variant} model of {self.bundle.root} produced NaN or inf; "
                              "the bundle is broken — re-export it or use another variant")
        return out

    def _classify(self, images: np.ndarray) -> np.ndarray:
        """The evaluator's probabilities ``[N, n_classes]`` for float images ``[N, C, H, W]``."""
        session = self._session("evaluator")
        logits, _ = _run(lambda: run_evaluator(session, images, self.batch_size), "evaluator")
        return softmax(logits.astype(np.float32))


def _run(call: Any, what: str) -> Any:
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 - inputs are checked; this is the model or the EP
        raise ProviderError(f"the runtime (ONNX Runtime or OpenVINO) failed running the {what} "
                            "model: "
                            f"{str(exc).splitlines()[0][:300]}") from exc


def _output(images: np.ndarray, output: str) -> np.ndarray:
    return images if output == "float" else to_pixels(images)


def _check_contract(bundle: Bundle) -> None:
    """Refuse a bundle whose latent or post-processing rule is not the one this code implements."""
    name = bundle.manifest["latent"].get("name")
    rule = bundle.manifest["postprocess"].get("rule")
    if name != ALGORITHM:
        raise BundleError(f"{bundle.root} uses latent {name!r}; this edgegen implements "
                          f"{ALGORITHM!r} — upgrade edgegen")
    if rule != RULE:
        raise BundleError(f"{bundle.root} uses post-processing rule {rule!r}; this edgegen "
                          f"implements {RULE!r} — upgrade edgegen")


def _check_ort_format(bundle: Bundle, spec: ProviderSpec) -> None:
    """``format="ort"`` needs the bundle's ORT-format files, an onnxruntime at least as new as
    the converter that wrote them, and an ONNX Runtime provider (OpenVINO reads ONNX only)."""
    section = bundle.require_ort_format()
    if spec.name == "openvino":
        raise ProviderError("format='ort' loads ORT-format models, which only ONNX Runtime "
                            "reads; use provider 'cpu' or 'cuda', or format='onnx' on openvino")
    need, have = section["onnxruntime"], ort().__version__
    if _version(have) < _version(need):
        raise BundleError(f"{bundle.root}'s .ort files were written by onnxruntime {need}; this "
                          f"onnxruntime is {have} — upgrade onnxruntime to >= {need} or load "
                          "format='onnx'")


def _version(text: str) -> tuple[int, ...]:
    """``"1.32.0+cu12"`` -> ``(1, 32, 0)``."""
    head = text.split("+", 1)[0].split("-", 1)[0]
    return tuple(int(p) if p.isdigit() else 0 for p in head.split(".")[:3])


def _generator_io(bundle: Bundle) -> tuple[str, str, str]:
    """(z input, label input, image output) names, from the manifest's I/O contract."""
    gen = bundle.manifest["generator"]
    try:
        (z_in, label_in), (image_out, *_) = gen["inputs"], gen["outputs"]
        names = (z_in["name"], label_in["name"], image_out["name"])
        dtypes = (z_in["dtype"], label_in["dtype"], image_out["dtype"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{bundle.root}: the manifest's generator inputs/outputs are not "
                          f"[z, label] -> [image] ({exc!r}); re-export the bundle") from exc
    if dtypes != ("float32", "int64", "float32"):
        raise BundleError(f"{bundle.root}: generator I/O dtypes are {dtypes}; this runtime "
                          "expects (float32, int64, float32)")
    return names


def _check_session(session: Any, inputs: list[str], output: str, path: Path) -> None:
    have = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
    if have[0] != inputs or output not in have[1]:
        raise BundleError(f"{path} has inputs {have[0]} and outputs {have[1]}; the manifest "
                          f"says inputs {inputs} and output {output!r} — re-export")
