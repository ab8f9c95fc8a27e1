"""The single-process side of edgegen.training.distributed, layers and launch (the multi-process
runs are in test_ddp.py)."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.distributed as dist
import typer
from typer.testing import CliRunner

from edgegen.cli.app import app
from edgegen.cli.common import forwarded_args
from edgegen.core.errors import CheckpointError, ConfigError
from edgegen.training.distributed import Launch, World, check_global_batch
from edgegen.training.launch import check_launch, free_port, torchrun_command
from edgegen.training.layers import SyncBatchNorm, convert_batchnorm

runner = CliRunner()


def test_launch_reads_torchruns_environment() -> None:
    assert Launch.from_env({}) == Launch()
    env = {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
           "TORCHELASTIC_RESTART_COUNT": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    launch = Launch.from_env(env)
    assert (launch.rank, launch.world_size, launch.local_rank, launch.restart_count) == \
        (1, 4, 1, 2) and launch.distributed
    with pytest.raises(ConfigError, match="RANK=4 and WORLD_SIZE=4 are inconsistent"):
        Launch.from_env({**env, "RANK": "4"})
    with pytest.raises(ConfigError, match="MASTER_ADDR/MASTER_PORT are not set"):
        Launch.from_env({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="WORLD_SIZE='two' is not an integer"):
        Launch.from_env({"WORLD_SIZE": "two"})


def test_the_global_batch_must_divide_among_the_processes() -> None:
    check_global_batch(64, 4)
    with pytest.raises(ConfigError, match="--batch-size 64 is the global batch and must divide "
                                          "among the 3 processes; pass a multiple of 3 such as "
                                          "63 or 66"):
        check_global_batch(64, 3)


def test_a_world_of_one_process_is_the_identity() -> None:
    world = World(Launch(), torch.device("cpu"))
    assert world.main and not world.restarted and world.shard(64) == (0, 64)
    nets = {"g": torch.nn.Linear(2, 2)}
    assert world.wrap(nets)["g"] is nets["g"]
    assert world.mean({"a": 1.5}) == {"a": 1.5} and world.agree_max(3.0) == 3.0
    assert world.from_main(lambda: b"abc") == b"abc" and world.from_main(lambda: None) is None

    def missing() -> bytes:
        raise CheckpointError("no checkpoint")

    with pytest.raises(CheckpointError, match="no checkpoint"):
        world.from_main(missing)
    world.barrier()
    world.close()


@pytest.fixture
def one_rank_group():
    """A real gloo process group of one rank, in this process."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield dist.group.WORLD
    finally:
        dist.destroy_process_group()


def test_sync_batchnorm_is_batchnorm_over_the_global_batch(one_rank_group) -> None:
    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.BatchNorm2d(4),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 8),
                              torch.nn.BatchNorm1d(8))
    import copy

    synced = convert_batchnorm(copy.deepcopy(ref), one_rank_group, 1)
    assert isinstance(synced[1], SyncBatchNorm) and isinstance(synced[4], SyncBatchNorm)
    assert synced.state_dict().keys() == ref.state_dict().keys()  # checkpoints unchanged
    x = torch.randn(16, 2, 8, 8)
    for _ in range(3):  # training mode: batch statistics, gradients, running statistics
        for net in (ref, synced):
            net.zero_grad()
            net(x).square().mean().backward()
        assert torch.allclose(synced(x), ref(x), atol=1e-5)
        for (name, a), b in zip(ref.named_parameters(), synced.parameters()):
            assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-6), name
    for a, b in zip(ref.buffers(), synced.buffers()):
        assert torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-6)
    ref.eval()
    synced.eval()
    assert torch.allclose(synced(x), ref(x), atol=1e-5)
    copy.deepcopy(synced)  # a converted module can still be copied (the group is shared)


def test_the_launcher_runs_torchrun_on_the_loopback_interface(monkeypatch) -> None:
    port = free_port()
    cmd = torchrun_command(["train", "--out", "runs/x"], 2, max_restarts=3, port=port)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert {"--nproc-per-node=2", "--max-restarts=3", "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{port}"} <= set(cmd)
    assert cmd[-5:] == ["-m", "edgegen", "train", "--out", "runs/x"]
    with pytest.raises(ConfigError, match="--nproc-per-node must be positive"):
        check_launch(0, 0)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="was itself started by torchrun"):
        check_launch(2, 0)


def test_forwarded_args_give_the_same_values() -> None:
    seen: list[list[str]] = []
    mini = typer.Typer()

    @mini.command()
    def cmd(ctx: typer.Context, out: str = typer.Option("a", "--out"),
            n: int = typer.Option(None, "--n"), flag: bool = typer.Option(False, "--flag"),
            skip: int = typer.Option(None, "--skip")) -> None:
        seen.append(forwarded_args(ctx, ("skip",)))

    assert runner.invoke(mini, ["--n", "3", "--flag", "--skip", "9"]).exit_code == 0
    assert runner.invoke(mini, ["--out", "b c"]).exit_code == 0
    assert seen == [["--out", "a", "--n", "3", "--flag"], ["--out", "b c"]]


def test_cli_checks_the_launch_before_starting_anything(tmp_path, idx_dir) -> None:
    base = ["train", "--out", str(tmp_path / "r"), "--data-dir", str(idx_dir)]
    res = runner.invoke(app, [*base, "--max-restarts", "2"])
    assert res.exit_code == 2 and "--max-restarts needs --nproc-per-node" in res.output
    res = runner.invoke(app, [*base, "--nproc-per-node", "3"])
    assert res.exit_code == 2 and "--batch-size 64 is the global batch" in res.output
    res = runner.invoke(app, ["train-evaluator", "--out", str(tmp_path / "e"),
                              "--nproc-per-node", "3", "--batch-size", "100"])
    assert res.exit_code == 2 and "must divide among the 3 processes" in res.output
    assert not (tmp_path / "r").exists() and not (tmp_path / "e").exists()
