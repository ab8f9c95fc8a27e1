from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from edgegen.runtime.latent import latent
from edgegen.training.draws import Draws, DrawSource
from edgegen.training.layers import SampleDropout, convert_dropout
from edgegen.training.torch_utils import seed_for


def test_a_sample_draws_the_same_numbers_whatever_slice_it_is_in() -> None:
    whole = Draws(seed=7, epoch=3, start=0, n=12)
    halves = [Draws(seed=7, epoch=3, start=0, n=6), Draws(seed=7, epoch=3, start=6, n=6)]
    thirds = [Draws(seed=7, epoch=3, start=s, n=4) for s in (0, 4, 8)]
    for name, draw in (("z", lambda r: r.normal("z", 5)),
                       ("x0", lambda r: r.normal("x0", 1, 3, 3)),
                       ("t", lambda r: r.uniform("t")),
                       ("label", lambda r: r.randint("label", 10))):
        ref = draw(whole)
        for parts in (halves, thirds):
            assert torch.equal(torch.cat([draw(p) for p in parts]), ref), name
    # ... and nothing depends on the order in which a step draws its streams
    a, b = Draws(1, 0, 5, 3), Draws(1, 0, 5, 3)
    za, ya = a.normal("z", 4), a.randint("label", 10)
    yb, zb = b.randint("label", 10), b.normal("z", 4)
    assert torch.equal(za, zb) and torch.equal(ya, yb)


def test_values_shapes_and_the_documented_algorithm() -> None:
    r = Draws(seed=11, epoch=2, start=100, n=4000)
    z = r.normal("z", 3)
    assert z.dtype == torch.float32 and z.shape == (4000, 3)
    assert abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1) < 0.05
    # normal = the portable latent of the stream key, rows start .. start + n - 1
    key = seed_for(11, 2, 3, zlib.crc32(b"z"))  # stream 3 of (seed, epoch), then the name
    assert np.array_equal(z.numpy(), latent(key, 4000, 3, start=100))
    u = r.uniform("u", 2)
    assert u.dtype == torch.float32 and u.shape == (4000, 2)
    assert float(u.min()) >= 0 and float(u.max()) < 1 and abs(float(u.mean()) - 0.5) < 0.02
    k = r.randint("k", 7)
    assert k.dtype == torch.int64 and set(k.unique().tolist()) == set(range(7))
    assert r.normal("empty", 0).shape == (4000, 0)


def test_streams_differ_and_a_name_is_drawn_once_per_step() -> None:
    r = Draws(seed=0, epoch=0, start=0, n=64)
    assert not torch.equal(r.normal("a", 8), r.normal("b", 8))
    assert not torch.equal(Draws(0, 0, 0, 64).normal("a", 8), Draws(0, 1, 0, 64).normal("a", 8))
    assert not torch.equal(Draws(0, 0, 0, 64).normal("a", 8), Draws(1, 0, 0, 64).normal("a", 8))
    with pytest.raises(ValueError, match="'a' was already drawn"):
        r.uniform("a")
    assert [r.call_name("d"), r.call_name("d"), r.call_name("e")] == ["d#0", "d#1", "e#0"]
    with pytest.raises(ValueError, match="0 < high"):
        r.randint("bad", 0)


def test_sample_dropout_masks_follow_the_samples() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 2))
    source = DrawSource()
    convert_dropout(net, source)
    assert isinstance(net[1], SampleDropout) and net[1].path == "1"
    x = torch.randn(8, 4)
    with pytest.raises(RuntimeError, match="outside a training step"):
        net(x)

    def run(start: int, n: int) -> torch.Tensor:
        source.current = Draws(3, 0, start, n)
        try:
            return net(x[start:start + n])
        finally:
            source.current = None

    full = run(0, 8)
    assert torch.equal(torch.cat([run(0, 4), run(4, 4)]), full)
    h = net[0](x)
    source.current = Draws(3, 0, 0, 8)
    masked = net[1](h)
    assert ((masked == 0) | torch.isclose(masked, 2 * h)).all()  # kept values scaled by 1/(1-p)
    assert 0.3 < float((masked == 0).float().mean()) < 0.7
    source.current = None
    net.eval()
    assert torch.equal(net(x), net[2](net[0](x)))  # eval: no dropout, no Draws needed
