from __future__ import annotations

from pathlib import Path

import pytest

from edgegen.core.errors import CheckpointError
from edgegen.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, read_info


def test_corrupt_and_foreign_checkpoints(tmp_path: Path, tiny_run: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    data = (tiny_run / CHECKPOINT_NAME).read_bytes()
    (bad / CHECKPOINT_NAME).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(bad)

    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="not written by edgegen"):
        read_info(tmp_path / "foreign.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        read_info(tmp_path / "missing")
