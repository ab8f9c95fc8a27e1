"""What every worker (local engine) and replica (Ray engine) holds: the bundle's ``Generator``,
the v2 ``ModelInfo`` it answers for, and the warm-up before its first request. No Ray, no HTTP.
"""

from __future__ import annotations

from edgegen.runtime.generator import Generator
from edgegen.runtime.providers import spec_for
from edgegen.serve.config import ServeConfig, usable_cores
from edgegen.serve.protocol import ModelInfo


def intra_op_threads(cfg: ServeConfig, processes: int) -> int:
    """ONNX Runtime threads of one worker or replica: ``--threads``, else the usable cores
    split over the processes (at least 1): the processes together never ask for more cores
    than there are."""
    return cfg.threads or max(1, usable_cores() // max(1, processes))


def load_generator(cfg: ServeConfig, threads: int) -> Generator:
    """The process's ``Generator``: bitwise repeatable sessions (the bytes contract), ONNX
    Runtime's spin-waiting off (a server idles between batches, and its HTTP work needs the
    cores), TensorRT profiles up to the largest batch the process may run."""
    from edgegen.runtime.bundle import load_bundle

    bundle = load_bundle(cfg.bundle)
    variant = cfg.variant or ("fp32" if "fp32" in bundle.variants else next(iter(bundle.variants)))
    precision = bundle.variants[variant].get("precision", variant) if variant in bundle.variants \
        else variant
    largest = cfg.max_batch * cfg.max_request_rows
    spec = spec_for(cfg.provider, precision, batch_range=(1, cfg.max_batch, largest),
                    trt_cache_dir=cfg.bundle / "trt_cache", intra_op_threads=threads,
                    spinning=False, deterministic=True)
    return Generator.load(cfg.bundle, spec, batch_size=max(cfg.max_batch, cfg.max_request_rows))


def model_info(cfg: ServeConfig, generator: Generator) -> ModelInfo:
    variant = cfg.variant or generator.default_variant
    return ModelInfo.from_bundle(generator.bundle, name=cfg.model_name, variant=variant,
                                 guard=cfg.guard, max_batch=cfg.max_batch,
                                 max_request_rows=cfg.max_request_rows,
                                 max_delay_ms=cfg.delay_ms, steps=cfg.steps,
                                 guidance=cfg.guidance)


def warm_up(cfg: ServeConfig, generator: Generator, variant: str) -> None:
    """ONNX Runtime's first runs at a new batch size allocate: run 1 and ``max_batch`` rows
    before the first request (and the evaluator, when the guard is on)."""
    for n in sorted({1, cfg.max_batch}):
        generator.run([0] * n, seed=0, variant=variant, guard=cfg.guard and n == 1)

