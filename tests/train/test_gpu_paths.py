"""What the first CUDA run would hit, caught on a CPU by simulating the GPU side:
NCCL ranks pinned to their GPU before the group exists, optimizer state loaded on the CPU,
bf16 only where the GPU has it."""

from __future__ import annotations

from pathlib import Path

import pytest
import safetensors.torch
import torch
import torch.distributed as dist

from leed_train import checkpoint, run


def test_nccl_rank_is_pinned_to_its_gpu_before_the_group_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple] = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: calls.append(("set_device", i)))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: calls.append(("init", backend)))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    assert run.init_distributed() == (1, 2)
    assert calls == [("set_device", 1), ("init", "nccl")]


def test_optimizer_state_is_loaded_on_the_cpu_whatever_the_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters())
    net(torch.rand(4, 3)).sum().backward()
    opt.step()
    path = checkpoint.save_checkpoint(tmp_path, "leed", 1, {"net": net}, {"net": opt})
    seen: list[str] = []
    real = safetensors.torch.load_file

    def spy(file: str, device: str = "cpu") -> dict:
        seen.append(f"{Path(file).name}@{device}")
        return real(file, device="cpu")

    monkeypatch.setattr(safetensors.torch, "load_file", spy)
    monkeypatch.setattr(checkpoint, "_load_weights", lambda *a, **k: None)  # weights would go to the GPU
    checkpoint.load_checkpoint(path, {"net": net}, {"net": opt}, map_location="cuda:0", restore_rng=False)
    assert f"{checkpoint.OPTIMIZERS}@cpu" in seen


def test_bf16_only_where_the_gpu_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)  # a T4 / V100
    assert not run.use_bf16(cuda, "auto")
    assert run.use_bf16(cuda, "bf16")  # asked for explicitly
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # A100, H100
    assert run.use_bf16(cuda, "auto") and not run.use_bf16(cuda, "off")
    assert not run.use_bf16(cpu, "auto") and run.use_bf16(cpu, "bf16")


def test_minutes_fix_the_stage_length_once_from_the_measured_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    """--minutes 1 at 2 steps/s after a slow start: 30 steps in 15 s, 45 s left = 90 more steps."""
    clock = [0.0]
    monkeypatch.setattr(run.time, "perf_counter", lambda: clock[0])
    fake = type("R", (), {"world": 1, "main": True})()
    budget = run.TimeBudget(fake, minutes=1.0)
    got = []
    for step in range(0, 200):
        clock[0] = 3.0 + step * 0.5 if step else 0.0  # the first step (cuDNN's search) took 3 s
        got.append(budget.fit(step, 10_000))
        if step >= got[-1]:
            break
    assert got[:30] == [10_000] * 30  # unchanged until the warm-up steps are measured
    assert budget.fixed == 30 + int(2.0 * (60 - 18.0)) == 114
    assert got[-1] == 114 and len(got) == 115  # the loop stops at the fixed step
    assert budget.fit(200, 80) == 80  # never longer than the stage's own plan
    off = run.TimeBudget(fake, minutes=0.0)
    assert [off.fit(s, 500) for s in (0, 50, 400)] == [500, 500, 500]
