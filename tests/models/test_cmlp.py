"""The MLP cGAN's anti-collapse pieces: shapes, the label-grouped minibatch std, the options."""

from __future__ import annotations

import pytest
import torch

from edgegen.core.errors import ConfigError
from edgegen.models.cmlp import Discriminator, Generator, label_std
from edgegen.models.config import ModelConfig, model_config


def test_label_std_sees_a_collapsed_label_and_only_that_one() -> None:
    torch.manual_seed(0)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2])  # label 2 appears once
    h = torch.randn(7, 16)  # [B, F]
    h[3:6] = h[3]  # label 1 collapsed: three identical samples
    s = label_std(h, labels, n_classes=10)
    assert s.shape == (7, 1)
    assert torch.all(s[:3] > 0.3)  # varied samples of label 0
    assert torch.all(s[3:6] < 1e-3)  # the collapsed label
    assert s[6] < 1e-3  # alone in the batch: no spread to measure, for real and fake alike
    assert torch.equal(s[0], s[1]) and torch.equal(s[1], s[2])  # one value per label
    # the statistic is exactly the per-label standard deviation, averaged over features
    assert s[0].item() == pytest.approx(h[:3].std(0).mean().item(), rel=1e-4)


def test_label_std_differs_from_the_whole_batch_version() -> None:
    """Ten collapsed labels still vary a lot across the batch; grouped by label they do not."""
    protos = torch.randn(10, 32)
    labels = torch.arange(10).repeat(6)  # [60]
    h = protos[labels]  # every label draws one image
    assert h.std(0).mean() > 0.5
    assert label_std(h, labels, 10).max() < 1e-3


@pytest.mark.parametrize("options", [
    {},  # the earlier discriminator: concatenated label, dropout
    {"d_conditioning": "projection", "spectral_norm": True, "mbstd": True, "d_dropout": 0.0},
    {"d_conditioning": "projection"},
    {"mbstd": True},
])
def test_discriminator_shapes(options: dict) -> None:
    cfg = ModelConfig(arch="cmlp", width=8, **options)
    d = Discriminator(cfg)
    x, y = torch.rand(6, 1, 28, 28) * 2 - 1, torch.tensor([0, 1, 2, 0, 1, 2])
    score, cls = d(x, y)
    assert score.shape == (6,) and cls is None
    f = d.features(x, y)
    assert f.shape == (6, 4 * 8 + (1 if options.get("mbstd") else 0))
    sn = [n for n, _ in d.named_parameters() if "parametrizations" in n]
    assert bool(sn) == bool(options.get("spectral_norm"))
    assert (d.embed is None) == (options.get("d_conditioning") == "projection")


def test_spectral_norm_keeps_each_layer_near_lipschitz_one() -> None:
    d = Discriminator(model_config("cmlp", width=8)).train()
    x, y = torch.rand(32, 1, 28, 28), torch.arange(32) % 10
    for _ in range(30):  # power iterations run in training-mode forward passes
        d(x, y)
    w = d.net[0].weight  # the normalised weight, [2h, 784 (+ embed)]
    assert torch.linalg.matrix_norm(w, ord=2).item() == pytest.approx(1.0, abs=0.05)


def test_generator_contract_and_new_run_defaults() -> None:
    cfg = model_config("cmlp", width=8)
    assert (cfg.d_conditioning, cfg.spectral_norm, cfg.mbstd, cfg.d_dropout) == \
        ("projection", True, True, 0.0)
    g = Generator(cfg).eval()
    img = g(torch.randn(3, cfg.z_dim), torch.tensor([1, 5, 9]))
    assert img.shape == (3, 1, 28, 28) and img.abs().max() <= 1.0
    with pytest.raises(ConfigError, match="d_conditioning 'both'"):
        Discriminator(ModelConfig(arch="cmlp", d_conditioning="both"))


def test_a_config_from_before_the_options_builds_the_old_networks() -> None:
    """A checkpoint written before these options stores no such keys: the defaults apply."""
    old = ModelConfig.from_dict({"arch": "cmlp", "z_dim": 100, "n_classes": 10,
                                 "embed_dim": 50, "width": 8})
    d = Discriminator(old)
    assert d.embed is not None and d.proj is None and not d.mbstd
    assert any(isinstance(m, torch.nn.Dropout) for m in d.modules())
