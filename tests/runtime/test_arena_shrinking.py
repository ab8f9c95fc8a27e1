"""``arena_shrinking``: RunOptions that return a session's CPU arena after each run change
memory only — the images are the same bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgegen.runtime.bundle import load_bundle
from edgegen.runtime.latent import latent
from edgegen.runtime.providers import ProviderSpec, arena_shrinking, make_session
from edgegen.runtime.sessions import run_generator


def test_shrinking_the_arena_gives_the_same_images(tiny_bundle: Path) -> None:
    b = load_bundle(tiny_bundle)
    spec = ProviderSpec("cpu")
    session = make_session(b.model_bytes("fp32"), spec)
    z, y = latent(9, 64, b.z_dim), (np.arange(64) % 10).astype(np.int64)
    options = arena_shrinking(spec)
    got = run_generator(session, z, y, batch=16, run_options=options)
    assert options.get_run_config_entry("memory.enable_memory_arena_shrinkage") == "cpu:0"
    assert got.shape == (64, *b.image_shape)
    assert np.array_equal(got, run_generator(session, z, y, batch=16))
    assert arena_shrinking(ProviderSpec("openvino")) is None  # no arena, no RunOptions there
