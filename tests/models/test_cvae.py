"""The conditional VAE's learned prior: folded into the exported decoder, contract kept."""

from __future__ import annotations

import pytest
import torch

from edgegen.core.errors import ConfigError
from edgegen.models.cdcgan import Generator as ConvGenerator
from edgegen.models.config import ModelConfig, model_config
from edgegen.models.cvae import Decoder, Encoder


def test_learned_prior_maps_standard_normal_z_to_the_labels_prior() -> None:
    cfg = model_config("cvae", width=8)
    assert cfg.prior == "learned" and cfg.z_dim == 16
    dec = Decoder(cfg).eval()
    y = torch.tensor([0, 3, 3, 9])
    z = torch.randn(4, cfg.z_dim)
    # starts as N(0, I): the prior mapping is the identity
    assert torch.equal(dec.logits(z, y), dec.decode_logits(z, y))
    with torch.no_grad():
        dec.prior_mu.weight[3] = 2.0
        dec.prior_logstd.weight[3] = torch.log(torch.tensor(0.5))
    mu, logvar = dec.prior(y)
    assert mu.shape == logvar.shape == (4, 16)
    assert torch.allclose(logvar[1], torch.full((16,), 2 * torch.log(torch.tensor(0.5))))
    expected = dec.decode_logits(torch.stack([z[0], 2 + 0.5 * z[1], 2 + 0.5 * z[2], z[3]]), y)
    assert torch.allclose(dec.logits(z, y), expected, atol=1e-6)
    img = dec(z, y)
    assert img.shape == (4, 1, 28, 28) and img.abs().max() <= 1.0


def test_standard_prior_is_the_earlier_decoder() -> None:
    """A checkpoint from before the learned prior stores no ``prior``: the decoder it builds has
    exactly the earlier weights (the conditional DCGAN generator's), so it still loads."""
    old = ModelConfig.from_dict({"arch": "cvae", "z_dim": 16, "width": 8})
    assert old.prior == "standard"
    dec = Decoder(old)
    assert dec.state_dict().keys() == ConvGenerator(old).state_dict().keys()
    mu, logvar = dec.prior(torch.tensor([1, 2]))
    assert torch.equal(mu, torch.zeros(2, 16)) and torch.equal(logvar, torch.zeros(2, 16))
    with pytest.raises(ConfigError, match="prior 'vamp'"):
        Decoder(ModelConfig(arch="cvae", prior="vamp"))


def test_encoder_shapes() -> None:
    cfg = model_config("cvae", width=8)
    mu, logvar = Encoder(cfg)(torch.rand(5, 1, 28, 28), torch.arange(5))
    assert mu.shape == logvar.shape == (5, 16)
