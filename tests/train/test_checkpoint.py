"""Checkpoints: exact resume, atomicity (also under SIGKILL), keep-last-N, refusals."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch
from torch import nn

from leed_runtime.atomic import atomic_write_text
from leed_runtime.errors import LeedError
from leed_train import checkpoint
from leed_train.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    load_shared_weights,
    load_weights,
    save_checkpoint,
)
from leed_train.run import layer_counts


class Net(nn.Module):
    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.norm = nn.BatchNorm2d(width)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(torch.relu(self.norm(self.conv1(x))))
        return self.head(h.mean(dim=(2, 3)))


def build() -> tuple[Net, torch.optim.Adam]:
    torch.manual_seed(0)
    net = Net()
    return net, torch.optim.Adam(net.parameters(), lr=1e-2, betas=(0.5, 0.999))


def train(net: Net, opt: torch.optim.Optimizer, steps: int) -> None:
    for _ in range(steps):
        x = torch.rand(4, 3, 8, 8) + float(np.random.rand()) + random.random()
        loss = net(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def seed(value: int) -> None:
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


def test_resume_is_bitwise_exact(tmp_path: Path) -> None:
    seed(1)
    net_a, opt_a = build()
    seed(1)
    train(net_a, opt_a, 6)

    net_b, opt_b = build()
    seed(1)
    train(net_b, opt_b, 3)
    save_checkpoint(tmp_path, "leed", 3, {"E": net_b}, {"opt": opt_b}, extra={"kimg": 1.5}, epoch=2)
    seed(99)  # the RNG must come from the checkpoint, not from here
    net_c, opt_c = build()
    state = load_checkpoint(latest_checkpoint(tmp_path, "leed"), {"E": net_c}, {"opt": opt_c})
    assert (state["step"], state["epoch"], state["extra"]) == (3, 2, {"kimg": 1.5})
    train(net_c, opt_c, 3)

    for (key, a), c in zip(net_a.state_dict().items(), net_c.state_dict().values(), strict=True):
        assert torch.equal(a, c), key
    assert opt_c.state_dict()["param_groups"][0]["betas"] == (0.5, 0.999)


def test_keep_last_n_and_stages(tmp_path: Path) -> None:
    net, opt = build()
    for step in (10, 20, 30, 40):
        save_checkpoint(tmp_path, "leed", step, {"E": net}, {"opt": opt}, keep=2)
    save_checkpoint(tmp_path, "neutralizer", 5, {"G": net}, {}, keep=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["leed-00000030", "leed-00000040", "neutralizer-00000005"]
    assert latest_checkpoint(tmp_path, "leed").name == "leed-00000040"
    assert latest_checkpoint(tmp_path, "psi") is None
    assert latest_checkpoint(tmp_path / "nowhere", "leed") is None
    with pytest.raises(LeedError, match="keep-checkpoints"):
        save_checkpoint(tmp_path, "leed", 50, {"E": net}, {"opt": opt}, keep=0)


def test_same_step_saved_twice_replaces(tmp_path: Path) -> None:
    net, opt = build()
    save_checkpoint(tmp_path, "leed", 7, {"E": net}, {"opt": opt}, extra={"n": 1})
    save_checkpoint(tmp_path, "leed", 7, {"E": net}, {"opt": opt}, extra={"n": 2})
    assert load_checkpoint(latest_checkpoint(tmp_path, "leed"), {"E": net}, {"opt": opt})["extra"] == {"n": 2}
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["leed-00000007"]


def test_partial_tmp_dir_is_ignored_and_cleaned(tmp_path: Path) -> None:
    net, opt = build()
    first = save_checkpoint(tmp_path, "leed", 1, {"E": net}, {"opt": opt})
    stale = tmp_path / "checkpoints" / ".tmp-leed-2-999999999"
    stale.mkdir()
    (stale / "weights.safetensors").write_bytes(b"\x00" * 10)
    assert latest_checkpoint(tmp_path, "leed") == first
    save_checkpoint(tmp_path, "leed", 3, {"E": net}, {"opt": opt})
    assert not stale.exists()


def test_failed_save_leaves_previous_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net, opt = build()
    first = save_checkpoint(tmp_path, "leed", 1, {"E": net}, {"opt": opt})
    real_save = safetensors.torch.save_file
    calls = []

    def flaky_save(tensors: dict, filename: str, *args: object, **kwargs: object) -> None:
        calls.append(filename)
        if len(calls) == 2:  # weights written, then the disk "fills up"
            raise OSError("No space left on device")
        real_save(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "save_file", flaky_save)
    with pytest.raises(LeedError, match="No space left on device"):  # one line for the user, not a traceback
        save_checkpoint(tmp_path, "leed", 2, {"E": net}, {"opt": opt}, keep=1)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["leed-00000001"]
    assert latest_checkpoint(tmp_path, "leed") == first
    monkeypatch.undo()
    fresh, fresh_opt = build()
    load_checkpoint(first, {"E": fresh}, {"opt": fresh_opt})


def test_nan_weights_refused(tmp_path: Path) -> None:
    net, opt = build()
    save_checkpoint(tmp_path, "leed", 1, {"E": net}, {"opt": opt})
    with torch.no_grad():
        net.conv1.weight[0, 0, 0, 0] = float("nan")
    bad = save_checkpoint(tmp_path, "leed", 2, {"E": net}, {"opt": opt})
    with pytest.raises(LeedError, match=r"NaN weights in E\.conv1\.weight.*earlier: leed-00000001"):
        load_checkpoint(bad, {"E": Net()}, {"opt": build()[1]})
    with pytest.raises(LeedError, match="NaN weights"):
        load_weights(bad, {"E": Net()})


def test_mismatches_refused(tmp_path: Path) -> None:
    net, opt = build()
    path = save_checkpoint(tmp_path, "leed", 1, {"E": net, "D": nn.Linear(2, 2)}, {"opt": opt})

    with pytest.raises(LeedError, match=r"shape \(16, 3, 3, 3\).*\(8, 3, 3, 3\)"):
        load_weights(path, {"E": Net(width=8)})
    with pytest.raises(LeedError, match=r"lacks E\.extra\.weight"):
        other = Net()
        other.extra = nn.Linear(1, 1)
        load_weights(path, {"E": other})
    with pytest.raises(LeedError, match=r"unexpected E\.head\."):
        other = Net()
        del other.head
        load_weights(path, {"E": other})
    with pytest.raises(LeedError, match="no weights for module 'Q'"):
        load_weights(path, {"Q": Net()})
    with pytest.raises(LeedError, match="holds module 'D'"):
        load_checkpoint(path, {"E": Net()}, {"opt": opt})
    with pytest.raises(LeedError, match="no state for optimizer 'opt2'"):
        load_checkpoint(path, {"E": Net(), "D": nn.Linear(2, 2)}, {"opt": opt, "opt2": opt})
    load_weights(path, {"D": nn.Linear(2, 2)})  # a subset is fine for export and eval
    (path / "rng.safetensors").unlink()
    with pytest.raises(LeedError, match="incomplete"):
        load_weights(path, {"E": Net()})


def test_init_copies_the_shared_layers_and_names_the_new(tmp_path: Path) -> None:
    """`leed-train --init`: every tensor of the same name and shape is copied, new layers keep
    their initialisation and are named; another shape or a module the checkpoint lacks is refused."""
    net, opt = build()
    path = save_checkpoint(tmp_path, "leed", 1, {"E": net}, {"opt": opt})
    torch.manual_seed(1)
    grown = Net()
    grown.extra = nn.Linear(2, 2)
    extra = grown.extra.weight.detach().clone()
    fresh = load_shared_weights(path, {"E": grown})
    assert fresh == ["E.extra.weight", "E.extra.bias"]
    assert layer_counts([*fresh, "D.flow_head.2.weight"]) == "E.extra (2 tensors), D.flow_head (1 tensor)"
    for key, value in net.state_dict().items():
        torch.testing.assert_close(grown.state_dict()[key], value, rtol=0, atol=0)
    torch.testing.assert_close(grown.extra.weight, extra, rtol=0, atol=0)
    with pytest.raises(LeedError, match=r"E\.conv1\.weight has shape \(16, 3, 3, 3\), this run's \(8, 3, 3, 3\)"):
        load_shared_weights(path, {"E": Net(width=8)})
    with pytest.raises(LeedError, match="no weights for 'Q'"):
        load_shared_weights(path, {"Q": Net()})


def test_wrappers_are_unwrapped(tmp_path: Path) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        net = Net()
        ddp = nn.parallel.DistributedDataParallel(net)
        compiled = torch.compile(Net(), backend="eager")
        path = save_checkpoint(tmp_path, "leed", 1, {"E": ddp, "D": compiled}, {})
    finally:
        torch.distributed.destroy_process_group()
    keys = safetensors.torch.load_file(str(path / "weights.safetensors")).keys()
    assert "E.conv1.weight" in keys and "D.conv1.weight" in keys
    assert not any("module." in k or "_orig_mod" in k for k in keys)
    plain = Net()
    load_weights(path, {"E": plain})
    assert torch.equal(plain.conv1.weight, net.conv1.weight)


def test_atomic_write_text(tmp_path: Path) -> None:
    target = tmp_path / "config.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


SAVER = textwrap.dedent(
    """
    import sys
    import torch
    from torch import nn
    from leed_train.checkpoint import save_checkpoint

    net = nn.Sequential(*[nn.Linear(1024, 1024) for _ in range(6)])  # 25 MB of weights
    opt = torch.optim.Adam(net.parameters())
    net(torch.rand(1, 1024)).sum().backward()
    opt.step()
    step = 0
    while True:
        step += 1
        with torch.no_grad():
            net[0].bias.fill_(step)
        save_checkpoint(sys.argv[1], "leed", step, {"E": net}, {"opt": opt}, keep=2)
        print(step, flush=True)
    """
)


def test_sigkill_mid_save_leaves_a_loadable_checkpoint(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SAVER, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2]
    )
    try:
        assert proc.stdout.readline().strip() == "1", "the saver did not start"
        time.sleep(random.uniform(0.0, 1.0))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    net = nn.Sequential(*[nn.Linear(1024, 1024) for _ in range(6)])
    opt = torch.optim.Adam(net.parameters())
    path = latest_checkpoint(tmp_path, "leed")
    assert path is not None
    state = load_checkpoint(path, {"E": net}, {"opt": opt}, restore_rng=False)
    assert float(net[0].bias[0].detach()) == state["step"]
    assert opt.state_dict()["state"][0]["exp_avg"].shape == (1024, 1024)


def test_a_checkpoint_that_cannot_be_written_is_one_line_and_keeps_the_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk during a checkpoint: safetensors raises its own error, which becomes one line
    naming the folder and the intact checkpoint to resume from; no half-written folder stays."""
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(net.parameters())
    checkpoint.save_checkpoint(tmp_path, "leed", 10, {"E": net}, {"E": opt})

    def full(*args: object, **kwargs: object) -> None:
        raise safetensors.SafetensorError("Error while serializing: IoError(No space left on device)")

    monkeypatch.setattr(checkpoint.safetensors.torch, "save_file", full)
    with pytest.raises(
        LeedError, match=r"leed-00000020: cannot write the checkpoint .*No space left.*leed-00000010 is intact"
    ):
        checkpoint.save_checkpoint(tmp_path, "leed", 20, {"E": net}, {"E": opt})
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["leed-00000010"]
