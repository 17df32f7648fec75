"""Command line of `leed-train` (`leed-synth`, which needs no PyTorch, is in `synth_cli.py`).

The options are generated from the fields of `TrainConfig` (and the architecture fields of
`NetConfig` that have a flag): one option per field, named after it, with the help text the
field carries, so a field cannot lack its option. Only the options given on the command line
override the defaults, or the run's saved config when resuming (`TrainConfig.for_run`); then
`loop.run_training` reads top to bottom. `--check`, `--describe` and `--dry-run` are actions,
not fields.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from leed_runtime.atomic import TMP_PREFIX
from leed_runtime.errors import LeedError, OneLineCommand, handle_errors
from leed_train.checkpoint import latest_checkpoint
from leed_train.config import STAGES, NetConfig, TrainConfig, bounds_text, flag_name
from leed_train.data.cache import default_cache_dir
from leed_train.data.check import check_dataset
from leed_train.describe import describe_networks
from leed_train.loop import run_training

TRAIN_EXAMPLE = """
\b
Examples:
  leed-synth faces data/synth --identities 60
  leed-train data/synth --check                      # dataset report, no training
  leed-train --describe --preset small               # params and GFLOPs per network
  leed-train data/synth --out runs/small --preset small
  leed-train data/synth --out runs/tiny --preset tiny --max-steps 200 --device cpu
  leed-train data/synth --out runs/small --resume    # continue from the last checkpoint
"""


class _Csv(click.ParamType):
    """`045,090,135` -> ("045", "090", "135")."""

    name = "a,b,..."

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        return tuple(v.strip() for v in str(value).split(",") if v.strip())


def _option(f: dataclasses.Field, kind: Any) -> Callable[[Callable], Callable]:
    """The click option of one config field: `--field-name` (or its `flag`), older names after it.
    Its range is in the help; the config refuses a value outside it (`TrainConfig.__post_init__`)."""
    meta = f.metadata
    name = flag_name(f)
    default = meta.get("default_help", "all" if f.default == () else f.default)
    valid = bounds_text(meta)
    text = f"{meta['help']} [default: {default}{'; ' + valid if valid else ''}]"
    if kind is bool:
        off = meta.get("off") or "--no-" + name[2:]
        return click.option(f"{name}/{off}", f.name, default=None, help=text)
    if "choices" in meta:
        kind = click.Choice(meta["choices"])
    elif typing.get_origin(kind) is tuple:
        kind = _Csv()
    return click.option(name, *meta.get("aliases", ()), f.name, type=kind, default=None, help=text)


def _fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    """(field, type) of every field of `cls` that is an option."""
    hints = typing.get_type_hints(cls)
    return [
        (f, hints[f.name]) for f in dataclasses.fields(cls) if "help" in f.metadata and "argument" not in f.metadata
    ]


TRAIN_FIELDS = _fields(TrainConfig)
NET_FIELDS = _fields(NetConfig)  # the architecture fields with a flag (the neutralizer's G)
assert not {f.name for f, _ in TRAIN_FIELDS} & {f.name for f, _ in NET_FIELDS}


def _config_options(command: Callable) -> Callable:
    for f, kind in reversed(TRAIN_FIELDS + NET_FIELDS):
        command = _option(f, kind)(command)
    return command


@click.command(
    cls=OneLineCommand,
    epilog=TRAIN_EXAMPLE,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.argument("data_dir", required=False, type=click.Path(path_type=Path))
@_config_options
@click.option("--check", is_flag=True, help="Print a dataset report and exit (non-zero on a bad folder).")
@click.option("--describe", is_flag=True, help="Print params and GFLOPs per network for --preset and exit.")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
@handle_errors
def train_main(data_dir: Path | None, check: bool, describe: bool, dry_run: bool, **opts: Any) -> None:
    """Train LEED: the neutralizer (stage 1), then E, D, X, I, critic, Q and S (stage 2)."""
    given = _given(opts)
    if describe:
        click.echo(describe_networks(_net(given)))
        return
    if data_dir is None:
        raise LeedError("DATA_DIR is missing: give a dataset folder, e.g. `leed-train data/synth --check`")
    if check:
        cfg = TrainConfig.from_dict({k: v for k, v in given.items() if k != "net"})
        click.echo(
            check_dataset(
                data_dir, cfg.data_format, cfg.angles, cfg.gazes, val_fraction=cfg.val_fraction, seed=cfg.seed
            )
        )
        return
    cfg = _train_config(data_dir, given)
    if dry_run:
        click.echo(cfg.to_json())
        return
    default_cache_dir()  # a LEED_CACHE that is a file is refused now, before the run folder is written
    out = Path(cfg.out)
    made = not out.exists()
    try:
        run_training(cfg)
    except OSError as exc:  # a full disk, a read-only folder: one line, never a traceback
        then = "; then rerun with --resume to continue from the last checkpoint" if _has_checkpoint(out) else ""
        raise LeedError(os_error_line(exc, "--out", out, then)) from None
    finally:
        if made and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # the run folder this run made and could not write into


def _given(opts: dict[str, Any]) -> dict[str, Any]:
    """The options given on the command line by field name; the architecture's under `net`."""
    net_names = {f.name for f, _ in NET_FIELDS}
    given = {k: v for k, v in opts.items() if v is not None and k not in net_names}
    given["net"] = {k: v for k, v in opts.items() if v is not None and k in net_names}
    return given


def _net(given: dict[str, Any]) -> NetConfig:
    """The architecture `--describe` shows: the preset's, with the given generator fields."""
    return dataclasses.replace(NetConfig.from_preset(given.get("preset", TrainConfig.preset)), **given["net"])


def _train_config(data_dir: Path, given: dict[str, Any]) -> TrainConfig:
    """The given options over the defaults, or over the run's saved config (so `--resume` needs
    no other flag, and `--stage leed` after the neutralizer keeps its settings)."""
    out = Path(given.get("out") or f"runs/{data_dir.name}-{given.get('preset', TrainConfig.preset)}")
    given = {**given, "data_dir": str(data_dir), "out": str(out)}
    config = out / "config.json"
    if out.exists() and not out.is_dir():
        raise LeedError(f"--out {out} is a file; choose a folder for the run")
    if out.is_dir() and not config.exists() and any(not p.name.startswith(TMP_PREFIX) for p in out.iterdir()):
        raise LeedError(
            f"--out {out} is not empty and not a leed-train run (no config.json); choose a new or empty folder"
        )
    neutralizer_trained = latest_checkpoint(out, "neutralizer") is not None
    reads_saved = given.get("resume") or (given.get("stage") == "leed" and neutralizer_trained and config.exists())
    saved = TrainConfig.load(config) if reads_saved else None
    return TrainConfig.for_run(given, saved, neutralizer_trained)


def os_error_line(exc: OSError, flag: str, out: Path, then: str = "") -> str:
    """The one line of an OSError (full disk, read-only folder) met by a command writing `out`
    (`flag` names it): `out` and the fix when the path is `out`, in it, a folder above it or its
    temp folder beside it (`.tmp-OUT...`), else the path's own line. `then`: what to do after."""
    path = Path(exc.filename or out)
    full, mine = Path(os.path.abspath(path)), Path(os.path.abspath(out))
    beside = mine.parent in full.parents and full.relative_to(mine.parent).parts[0].startswith(
        (f"{TMP_PREFIX}{mine.name}", f".old-{mine.name}")
    )
    why = exc.strerror or str(exc)
    if full == mine or mine in full.parents or full in mine.parents or beside:
        return (
            f"{flag} {out}: cannot write {_final(path, out)} ({why}); free some space or choose a writable folder{then}"
        )
    return f"{path}: {why}; check that file and its permissions"


def _final(path: Path, out: Path) -> Path:
    """The name a temp path is written for: `OUT/x` for `.tmp-OUT-PID/x`, `f` for `.tmp-f.PID.*`."""
    parts = [out.name if p.startswith(f"{TMP_PREFIX}{out.name}-") else p for p in path.parts]
    match = re.match(rf"^{re.escape(TMP_PREFIX)}(.+?)\.\d+\.", parts[-1]) if parts else None
    return Path(*parts[:-1], match[1]) if match else Path(*parts)


def _has_checkpoint(out: Path) -> bool:
    return any(latest_checkpoint(out, stage) is not None for stage in STAGES if stage != "all")


if __name__ == "__main__":  # `python -m leed_train.cli` runs leed-train (used under torchrun)
    train_main()
