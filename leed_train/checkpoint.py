"""Checkpoints: safetensors + JSON, no pickle; written atomically, last N kept; exact resume.

A checkpoint is the directory `RUN_DIR/checkpoints/{stage}-{step:08d}/`:

    weights.safetensors     every module's state dict, keys `"{name}.{key}"` (DDP/compile unwrapped)
    optimizers.safetensors  the tensors of every optimizer state dict
    optimizers.json         the rest of those state dicts, tensors replaced by references
    rng.safetensors         torch CPU (and CUDA) generator states
    state.json              step, stage, epoch, extra, python and numpy RNG states, versions

It is written into `checkpoints/.tmp-{stage}-{step}-{pid}/` and renamed into place, so a
directory with the final name is always complete; a killed write leaves only a `.tmp-*`
directory, which is ignored and removed by the next save.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.torch
import torch
from torch import nn

from leed_runtime.atomic import TMP_PREFIX, fsync_dir, pid_alive
from leed_runtime.errors import LeedError, one_line

FORMAT = 1
WEIGHTS = "weights.safetensors"
OPTIMIZERS = "optimizers.safetensors"
OPTIMIZERS_JSON = "optimizers.json"
RNG = "rng.safetensors"
STATE = "state.json"
FILES = (WEIGHTS, OPTIMIZERS, OPTIMIZERS_JSON, RNG, STATE)


# ---------------------------------------------------------------------------------------------
# Atomic files


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


# ---------------------------------------------------------------------------------------------
# Module and optimizer state <-> safetensors + JSON


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module under DistributedDataParallel/DataParallel and torch.compile wrappers."""
    while True:
        if isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            module = module.module
        elif isinstance(getattr(module, "_orig_mod", None), nn.Module):
            module = module._orig_mod
        else:
            return module


def _check_name(name: str) -> None:
    assert name and "." not in name and "/" not in name, f"bad module/optimizer name {name!r}"


def _module_tensors(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        _check_name(name)
        for key, tensor in unwrap(module).state_dict().items():
            out[f"{name}.{key}"] = tensor.detach().cpu().contiguous().clone()
    return out


def _encode(obj: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON-able copy of `obj`; tensors go to `tensors` under `path` and leave a reference."""
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": path}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _encode(v, f"{path}.{k}", tensors) for k, v in obj.items()}
        return {"__items__": [[k, _encode(v, f"{path}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{path}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{path}.{i}", tensors) for i, v in enumerate(obj)]
    assert obj is None or isinstance(obj, (bool, int, float, str)), f"{path}: cannot store {type(obj).__name__}"
    return obj


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__items__" in obj:
            return {k: _decode(v, tensors) for k, v in obj["__items__"]}
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        return {k: _decode(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    return obj


# ---------------------------------------------------------------------------------------------
# RNG


def _rng_state() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    version, keys, gauss = random.getstate()
    name, np_keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    meta = {
        "python": [version, list(keys), gauss],
        "numpy": [name, np_keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda.{i}"] = state.cpu()
    return meta, tensors


def _restore_rng(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    version, keys, gauss = meta["python"]
    random.setstate((version, tuple(keys), gauss))
    name, np_keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, np.asarray(np_keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["torch_cpu"].cpu())
    cuda = sorted((k for k in tensors if k.startswith("torch_cuda.")), key=lambda k: int(k.split(".")[1]))
    if cuda and torch.cuda.is_available():
        for i, key in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(tensors[key].cpu(), i)


# ---------------------------------------------------------------------------------------------
# Directories


def _checkpoint_dirs(run_dir: Path, stage: str) -> list[tuple[int, Path]]:
    """Complete checkpoints of `stage`, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    pattern = re.compile(rf"^{re.escape(stage)}-(\d{{8,}})$")
    found = []
    for path in root.iterdir():
        match = pattern.match(path.name)
        if match and path.is_dir() and all((path / f).is_file() for f in FILES):
            found.append((int(match.group(1)), path))
    return sorted(found)


def _clean_stale(root: Path) -> None:
    """Remove `.tmp-*` directories left by killed writes (their process is gone, or is us)."""
    for path in root.glob(f"{TMP_PREFIX}*"):
        pid = path.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid() or not pid_alive(int(pid)):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def latest_checkpoint(run_dir: Path, stage: str) -> Path | None:
    """The newest complete checkpoint of `stage` in `run_dir`, or None."""
    found = _checkpoint_dirs(run_dir, stage)
    return found[-1][1] if found else None


# ---------------------------------------------------------------------------------------------
# Save


def save_checkpoint(
    run_dir: Path,
    stage: str,
    step: int,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    extra: dict | None = None,
    keep: int = 3,
    epoch: int = 0,
) -> Path:
    """Write `checkpoints/{stage}-{step:08d}/` atomically, drop older ones of `stage` beyond `keep`.

    `extra` must be JSON-able; it comes back from `load_checkpoint`.
    """
    if keep < 1:
        raise LeedError(f"--keep-checkpoints must be at least 1, got {keep}")
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    _clean_stale(root)
    final = root / f"{stage}-{step:08d}"
    tmp = root / f"{TMP_PREFIX}{stage}-{step}-{os.getpid()}"
    try:
        tmp.mkdir()
        weights = _module_tensors(modules)
        opt_tensors: dict[str, torch.Tensor] = {}
        opt_meta = {}
        for name, opt in optimizers.items():
            _check_name(name)
            opt_meta[name] = _encode(opt.state_dict(), name, opt_tensors)
        rng_meta, rng_tensors = _rng_state()
        state = {
            "format": FORMAT,
            "stage": stage,
            "step": step,
            "epoch": epoch,
            "extra": extra or {},
            "modules": list(modules),
            "optimizers": list(optimizers),
            "torch": torch.__version__,
            "rng": rng_meta,
        }
        for fname, tensors in ((WEIGHTS, weights), (OPTIMIZERS, opt_tensors), (RNG, rng_tensors)):
            safetensors.torch.save_file(tensors, str(tmp / fname))
            _fsync_file(tmp / fname)
        for fname, obj in ((OPTIMIZERS_JSON, opt_meta), (STATE, state)):
            with open(tmp / fname, "w", encoding="utf-8") as f:
                json.dump(obj, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
        fsync_dir(tmp)
        if final.exists():  # the same step saved again (e.g. after a resume): swap the old one out
            old = root / f"{TMP_PREFIX}{stage}-{step}-old-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        fsync_dir(root)
    except (OSError, safetensors.SafetensorError) as exc:
        # a full disk or a read-only folder: safetensors raises its own error, not OSError
        shutil.rmtree(tmp, ignore_errors=True)
        latest = latest_checkpoint(run_dir, stage)
        keep = f"; {latest.name} is intact: rerun with --resume" if latest is not None else ""
        raise LeedError(
            f"{final}: cannot write the checkpoint ({one_line(str(exc))[:160]}); free some space or make "
            f"{root} writable{keep}"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for _, old_path in _checkpoint_dirs(run_dir, stage)[:-keep]:
        shutil.rmtree(old_path, ignore_errors=True)
    return final


# ---------------------------------------------------------------------------------------------
# Load


def _check_complete(path: Path) -> None:
    if not path.is_dir():
        raise LeedError(f"checkpoint {path} does not exist; list the run's checkpoints/ folder for the kept ones")
    missing = [f for f in FILES if not (path / f).is_file()]
    if missing:
        raise LeedError(
            f"checkpoint {path} is incomplete (missing {', '.join(missing)}); "
            "resume from an earlier checkpoint: move this one out of checkpoints/ and rerun with --resume"
        )


def _earlier_hint(path: Path) -> str:
    stage = path.name.rsplit("-", 1)[0]
    earlier = [p.name for _, p in _checkpoint_dirs(path.parent.parent, stage) if p.name < path.name]
    kept = ", ".join(earlier) if earlier else "none kept"
    return f"move {path.name} out of {path.parent} and rerun with --resume (earlier: {kept})"


def _load_weights(path: Path, modules: dict[str, nn.Module], map_location: str | torch.device, exact: bool) -> None:
    tensors = safetensors.torch.load_file(str(path / WEIGHTS), device=str(map_location))
    by_module: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        name, sub = key.split(".", 1)
        by_module.setdefault(name, {})[sub] = tensor
    if exact:
        unexpected = sorted(set(by_module) - set(modules))
        if unexpected:
            raise LeedError(
                f"checkpoint {path} holds module {unexpected[0]!r} that this run does not build "
                f"(it builds {', '.join(modules)}); check --stage and the run's config.json"
            )
    for name, module in modules.items():
        if name not in by_module:
            raise LeedError(f"checkpoint {path} has no weights for module {name!r} (it has {', '.join(by_module)})")
        target = unwrap(module).state_dict()
        saved = by_module[name]
        for key in [*target, *(k for k in saved if k not in target)]:
            if key not in saved:
                raise LeedError(f"checkpoint {path} lacks {name}.{key}; the architecture differs from the one saved")
            if key not in target:
                raise LeedError(f"checkpoint {path} has unexpected {name}.{key}; the architecture differs")
            if saved[key].shape != target[key].shape:
                raise LeedError(
                    f"checkpoint {path}: {name}.{key} has shape {tuple(saved[key].shape)}, "
                    f"the model expects {tuple(target[key].shape)}; the architecture differs from the one saved"
                )
            tensor = saved[key]
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                kind = "NaN" if bool(torch.isnan(tensor).any()) else "inf"
                raise LeedError(
                    f"checkpoint {path} has {kind} weights in {name}.{key}; "
                    f"resume from an earlier checkpoint: {_earlier_hint(path)}"
                )
        unwrap(module).load_state_dict(saved, strict=True)


def load_weights(path: Path, modules: dict[str, nn.Module], map_location: str | torch.device = "cpu") -> None:
    """Load only the weights of `modules` (export, eval); other modules in the checkpoint are ignored."""
    path = Path(path)
    _check_complete(path)
    _load_weights(path, modules, map_location, exact=False)


def load_shared_weights(
    path: Path, modules: dict[str, nn.Module], map_location: str | torch.device = "cpu"
) -> list[str]:
    """Copy into `modules` every tensor the checkpoint at `path` holds for them under the same
    name and shape (`leed-train --init`): a run that adds layers starts from another's weights.
    Returns the names of the tensors that were not there (they keep their initialisation); a
    tensor of another shape, or a module the checkpoint lacks, is a LeedError."""
    path = Path(path)
    _check_complete(path)
    tensors = safetensors.torch.load_file(str(path / WEIGHTS), device=str(map_location))
    fresh = []
    for name, module in modules.items():
        target = unwrap(module).state_dict()
        if not any(k.startswith(name + ".") for k in tensors):
            raise LeedError(f"checkpoint {path} has no weights for {name!r}; --init needs a run of the same stage")
        for key, value in target.items():
            saved = tensors.get(f"{name}.{key}")
            if saved is None:
                fresh.append(f"{name}.{key}")
            elif saved.shape != value.shape:
                raise LeedError(
                    f"checkpoint {path}: {name}.{key} has shape {tuple(saved.shape)}, this run's {tuple(value.shape)}; "
                    "--init needs a run of the same preset"
                )
            else:
                value.copy_(saved)
    return fresh


def load_checkpoint(
    path: Path,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    map_location: str | torch.device = "cpu",
    restore_rng: bool = True,
) -> dict:
    """Restore modules, optimizers and (by default) every RNG; return state.json (step, epoch, extra...)."""
    path = Path(path)
    _check_complete(path)
    state = json.loads((path / STATE).read_text(encoding="utf-8"))
    if state.get("format") != FORMAT:
        raise LeedError(f"checkpoint {path} has format {state.get('format')}, this leed reads format {FORMAT}")
    _load_weights(path, modules, map_location, exact=True)

    opt_meta = json.loads((path / OPTIMIZERS_JSON).read_text(encoding="utf-8"))
    # On the CPU whatever the device: `Optimizer.load_state_dict` moves each state to its
    # parameter's device itself, and keeps Adam's step counters on the CPU; loaded onto a GPU,
    # those counters would cost a host sync per parameter per step.
    opt_tensors = safetensors.torch.load_file(str(path / OPTIMIZERS), device="cpu")
    for name in sorted(set(opt_meta) | set(optimizers)):
        if name not in opt_meta:
            raise LeedError(f"checkpoint {path} has no state for optimizer {name!r} (it has {', '.join(opt_meta)})")
        if name not in optimizers:
            raise LeedError(f"checkpoint {path} holds optimizer {name!r} that this run does not build")
        try:
            optimizers[name].load_state_dict(_decode(opt_meta[name], opt_tensors))
        except (ValueError, KeyError) as exc:
            raise LeedError(f"checkpoint {path}: optimizer {name!r} does not match this run: {exc}") from exc

    if restore_rng:
        _restore_rng(state["rng"], safetensors.torch.load_file(str(path / RNG)))
    return state
