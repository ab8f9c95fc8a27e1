"""The flow-matching UNet and its unrolled Euler sampler (edgegen.models.cflow)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgegen.core.errors import ConfigError, RuntimeInputError
from edgegen.models.config import ModelConfig, model_config
from edgegen.models.registry import build_models
from edgegen.runtime.sampler import calls_per_image, time_grid


def _gen(**kw):
    torch.manual_seed(0)
    return build_models(model_config("cflow", width=8, **kw))["generator"].eval()


def test_default_shape_is_mnist_and_a_few_hundred_thousand_parameters() -> None:
    cfg = model_config("cflow")
    assert cfg.image_shape == (1, 28, 28) and cfg.z_dim == 784
    assert (cfg.sampler_steps, cfg.guidance) == (4, 2.0)
    g = build_models(cfg)["generator"]
    n = sum(p.numel() for p in g.parameters())
    assert 200_000 < n < 500_000, n
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg  # image_shape survives JSON (a list)


def test_unet_takes_the_null_label_and_keeps_the_image_shape() -> None:
    net = _gen().net
    x = torch.randn(3, 1, 28, 28)
    v = net(x, torch.tensor([0.0, 0.5, 0.99]), torch.tensor([0, 9, 10]))  # 10 = null
    assert v.shape == (3, 1, 28, 28) and v.dtype == torch.float32


@pytest.mark.parametrize("shape", [(1, 16, 16), (3, 12, 20)])
def test_image_shape_comes_from_the_config(shape: tuple[int, int, int]) -> None:
    g = _gen(image_shape=shape)
    assert g.z_dim == int(np.prod(shape)) and g.image_shape == shape
    with torch.inference_mode():
        out = g(torch.randn(2, g.z_dim), torch.tensor([1, 2]))
    assert out.shape == (2, *shape)


def test_an_image_size_the_unet_cannot_halve_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a multiple of 4"):
        _gen(image_shape=(1, 30, 30))
    with pytest.raises(ConfigError, match="z_dim"):
        build_models(ModelConfig(arch="cflow", z_dim=100, width=8))


def test_generator_output_is_clamped_and_the_trajectory_has_one_state_per_step() -> None:
    g = _gen()
    g.set_sampler(3, 2.0)
    z, y = torch.randn(4, 784) * 5, torch.tensor([0, 1, 2, 3])
    with torch.inference_mode():
        states = g.trajectory(z, y)
        out = g(z, y)
    assert len(states) == 3
    assert torch.equal(out, states[-1].clamp(-1, 1))
    assert out.min() >= -1 and out.max() <= 1


@pytest.mark.parametrize("guidance,calls,batch", [(1.0, 1, 4), (2.0, 1, 8)])
def test_guidance_is_one_network_call_per_step_on_the_doubled_batch(
        guidance: float, calls: int, batch: int) -> None:
    g = _gen()
    g.set_sampler(2, guidance)
    seen: list[int] = []
    g.net.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    with torch.inference_mode():
        g(torch.randn(4, 784), torch.tensor([0, 1, 2, 3]))
    assert seen == [batch] * (2 * calls)
    assert calls_per_image(2, guidance) == 2 * (1 if guidance == 1.0 else 2)


def test_guidance_one_is_the_conditional_velocity_and_the_loop_is_euler() -> None:
    g = _gen()
    z, y = torch.randn(2, 784), torch.tensor([3, 7])
    g.set_sampler(2, 1.0)
    with torch.inference_mode():
        x = z.view(2, 1, 28, 28)
        x1 = x + 0.5 * g.net(x, torch.zeros(2), y)
        x2 = x1 + 0.5 * g.net(x1, torch.full((2,), 0.5), y)
        assert torch.equal(g.trajectory(z, y)[-1], x2)
        g.set_sampler(1, 3.0)
        v_c, v_u = g.net(x, torch.zeros(2), y), g.net(x, torch.zeros(2), torch.tensor([10, 10]))
        want = x + 1.0 * (v_u + 3.0 * (v_c - v_u))
        assert torch.allclose(g.trajectory(z, y)[-1], want, atol=1e-6)


def test_time_grid_and_bad_sampler_settings() -> None:
    assert time_grid(4).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert time_grid(3).dtype == np.float32
    g = _gen()
    for steps, w in [(0, 2.0), (2.5, 2.0), (True, 2.0), (4, -1.0), (4, float("nan")),
                     (4, "2")]:
        with pytest.raises(RuntimeInputError):
            g.set_sampler(steps, w)
