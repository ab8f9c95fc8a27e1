"""The evaluator: a small CNN digit classifier, trained on real digits only.

It is the judge of hallucination (does the image show the digit that was asked for?) and its
128-d penultimate layer is the feature space of MNIST-FID.
"""

from __future__ import annotations

import torch
from torch import nn

from edgegen.models.config import ClassifierConfig, conv_grid

__all__ = ["ClassifierConfig", "DigitClassifier", "ExportableClassifier"]


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


class DigitClassifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        c = cfg.width
        self.image_shape = tuple(cfg.image_shape)
        gh, gw = conv_grid(self.image_shape, "the evaluator")
        self.body = nn.Sequential(
            *_block(self.image_shape[0], c), *_block(c, c), nn.MaxPool2d(2),  # [B, c, H/2, W/2]
            *_block(c, 2 * c), *_block(2 * c, 2 * c), nn.MaxPool2d(2),  # [B, 2c, H/4, W/4]
            nn.Flatten(),
            nn.Linear(2 * c * gh * gw, cfg.feature_dim), nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.feature_dim, cfg.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, C, H, W]`` in [-1, 1] -> ``[B, feature_dim]``."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))  # logits [B, n_classes]


class ExportableClassifier(nn.Module):
    """The graph written as ``evaluator.onnx``: image -> (logits, features)."""

    def __init__(self, clf: DigitClassifier) -> None:
        super().__init__()
        self.clf = clf

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.clf.features(image)
        return self.clf.head(feats), feats
