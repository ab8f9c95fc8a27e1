"""A user's generator, written without edgegen: ``forward(z, label)`` -> images in [-1, 1].

``python examples/byo/mypkg/models.py --weights gen.safetensors --onnx their_generator.onnx``
saves its (untrained, seeded) weights as safetensors and exports it with plain ``torch.onnx``
under names of its own (``noise``, ``class_id`` -> ``rgb``), for the README's ``--from-module`` and
``--from-onnx`` examples. A real model would be trained first; edgegen takes it as it is.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

Z_DIM, N_CLASSES, SHAPE = 16, 10, (3, 8, 8)


class SmallGenerator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(N_CLASSES, 8)
        self.net = nn.Sequential(nn.Linear(Z_DIM + 8, 64), nn.ReLU(),
                                 nn.Linear(64, SHAPE[0] * SHAPE[1] * SHAPE[2]))

    def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        h = self.net(torch.cat([z, self.embed(label)], dim=1))  # [B, C*H*W]
        return torch.tanh(h).view(-1, *SHAPE)  # [B, 3, 8, 8] in [-1, 1]


def make_generator() -> nn.Module:
    """The factory ``edgegen export --from-module mypkg.models:make_generator`` calls."""
    torch.manual_seed(0)
    return SmallGenerator()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", help="write the state_dict here (safetensors)")
    ap.add_argument("--onnx", help="export the module here with its own I/O names")
    args = ap.parse_args()
    gen = make_generator().eval()
    if args.weights:
        from safetensors.torch import save_file

        save_file(gen.state_dict(), args.weights)
    if args.onnx:
        torch.onnx.export(gen, (torch.zeros(2, Z_DIM), torch.tensor([0, 1])), args.onnx,
                          input_names=["noise", "class_id"], output_names=["rgb"],
                          dynamic_axes={"noise": {0: "n"}, "class_id": {0: "n"}, "rgb": {0: "n"}},
                          opset_version=17, dynamo=False)


if __name__ == "__main__":
    main()
