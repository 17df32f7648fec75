"""TrainConfig: `leed-train`'s options come from its fields, old flag names still work, and run
configs written by earlier versions load and resume unchanged."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import typing
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from leed_runtime.errors import LeedError
from leed_train.cli import train_main
from leed_train.config import BOUNDS, PRESETS, NetConfig, TrainConfig, bounds_problem

# config.json files written by leed before the neutralizer's architecture was stored only in
# `net` (copies of runs/tw, stage 2 from photos, and runs/tw-g, a masked pair-only neutralizer:
# runs that were training when the layout changed)
OLD_CONFIGS = sorted((Path(__file__).parent / "configs").glob("v0-*.json"))
# what changed in TrainConfig since those configs were written, read by every old-config test here
# and in test_training: fields moved into `net`, and fields added since, each at the default that
# keeps an old run as it was (off, none, --lr, or used only with net.warp, which is off)
SINCE = json.loads((Path(__file__).parent / "configs" / "since-v0.json").read_text())
MOVED, ADDED, NET_ADDED = SINCE["moved"], SINCE["added"], SINCE["net_added"]


def _dry_run(args: list[str]) -> dict:
    result = CliRunner().invoke(train_main, [*args, "--dry-run"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_every_field_is_an_option_named_after_it() -> None:
    options = {p.name: p for p in train_main.params}
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("data_dir", "net"):  # the argument DATA_DIR; the architecture comes from --preset
            continue
        assert f.name in options, f"TrainConfig.{f.name} has no leed-train option"
        assert f"--{f.name.replace('_', '-')}" in options[f.name].opts, options[f.name].opts
        assert f.metadata["help"] in options[f.name].help
    flagged = [f.name for f in dataclasses.fields(NetConfig) if "flag" in f.metadata]
    assert flagged == ["stargan_conv_dim", "stargan_repeat", "stargan_mask"]


def test_every_earlier_flag_still_works(tmp_path: Path) -> None:
    cfg = _dry_run([
        str(tmp_path), "--out", str(tmp_path / "run"), "--stage", "neutralizer", "--preset", "tiny",
        "--format", "rafd", "--angles", "045,090", "--gazes", "frontal", "--val-fraction", "0.2", "--epochs", "3",
        "--max-steps", "5", "--batch-size", "6", "--gan-iters", "7", "--gan-labels", "expression", "--gan-lr", "2e-4",
        "--gan-n-critic", "3", "--gan-pair-l1", "4", "--gan-pair-only", "--gan-conv-dim", "12", "--gan-repeat", "1",
        "--gan-mask", "--neutrals", "photos", "--amp", "off", "--n-critic", "2", "--psi-epochs", "9", "--lr", "3e-4",
        "--lr-decoder", "1e-3", "--lambda-recon", "100", "--lambda-adv", "0.01", "--log-every", "11",
        "--sample-every", "12", "--checkpoint-every", "13", "--keep-checkpoints", "2", "--perceptual", "pixels",
        "--psi", "fer", "--no-q", "--no-siamese", "--device", "cpu", "--workers", "0", "--seed", "5",
    ])  # fmt: skip
    expected = {
        "out": str(tmp_path / "run"), "stage": "neutralizer", "preset": "tiny", "data_format": "rafd",
        "angles": ["045", "090"], "gazes": ["frontal"], "val_fraction": 0.2, "epochs": 3, "max_steps": 5,
        "batch_size": 6, "gan_iters": 7, "gan_labels": "expression", "gan_lr": 2e-4, "gan_n_critic": 3,
        "gan_lambda_pair": 4.0, "gan_pair_only": True, "neutrals": "photos", "amp": "off", "n_critic": 2,
        "psi_epochs": 9, "lr": 3e-4, "lr_decoder": 1e-3, "lambda_recon": 100.0, "lambda_adv": 0.01, "log_every": 11,
        "sample_every": 12, "checkpoint_every": 13, "keep_checkpoints": 2, "perceptual": "pixels", "psi": "fer",
        "use_q": False, "use_siamese": False, "device": "cpu", "workers": 0, "seed": 5,
    }  # fmt: skip
    assert {k: cfg[k] for k in expected} == expected
    assert cfg["net"] == {
        **dataclasses.asdict(NetConfig.from_preset("tiny")),
        "stargan_conv_dim": 12,
        "stargan_repeat": 1,
        "stargan_mask": True,
    }
    assert not set(MOVED) & set(cfg)  # the architecture is stored once, in `net`


def test_fields_without_a_flag_before_have_one_now(tmp_path: Path) -> None:
    cfg = _dry_run([
        str(tmp_path), "--beta1", "0.9", "--beta2", "0.99", "--lambda-q", "0.1", "--lambda-s", "10",
        "--lambda-gp", "5", "--siamese-margin", "0.3", "--gan-decay-iters", "50", "--gan-batch-size", "8",
        "--gan-lambda-cls", "2", "--gan-lambda-rec", "3", "--gan-lambda-gp", "4", "--psi-lr", "0.01",
        "--no-channels-last", "--data-format", "folder", "--gan-lambda-pair", "1.5", "--no-q",
    ])  # fmt: skip
    assert (cfg["beta1"], cfg["beta2"], cfg["lambda_q"], cfg["lambda_s"], cfg["lambda_gp"]) == (0.9, 0.99, 0.1, 10, 5)
    assert (cfg["siamese_margin"], cfg["gan_decay_iters"], cfg["gan_batch_size"]) == (0.3, 50, 8)
    assert (cfg["gan_lambda_cls"], cfg["gan_lambda_rec"], cfg["gan_lambda_gp"], cfg["psi_lr"]) == (2, 3, 4, 0.01)
    assert cfg["channels_last"] is False and cfg["data_format"] == "folder" and cfg["gan_lambda_pair"] == 1.5


@pytest.mark.parametrize("path", OLD_CONFIGS, ids=lambda p: p.stem)
def test_old_run_configs_load_unchanged(path: Path) -> None:
    old = json.loads(path.read_text())
    cfg = TrainConfig.load(path)
    new = json.loads(cfg.to_json())
    want = {**{k: v for k, v in old.items() if k not in MOVED}, **ADDED, "net": {**old["net"], **NET_ADDED}}
    assert new == want  # every value as it was
    assert all(new["net"][MOVED[k]] == old[k] for k in MOVED if old[k])  # already merged into `net`
    assert cfg.resolved() == cfg and TrainConfig.from_dict(new) == cfg


@pytest.mark.parametrize("path", OLD_CONFIGS, ids=lambda p: p.stem)
def test_old_run_configs_resume_with_their_options(path: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(path, run / "config.json")
    cfg = _dry_run([str(tmp_path / "data"), "--out", str(run), "--resume"])
    old = {k: v for k, v in json.loads(path.read_text()).items() if k not in MOVED}
    net = {**old["net"], **NET_ADDED}
    assert cfg == {**old, **ADDED, "net": net, "data_dir": str(tmp_path / "data"), "out": str(run), "resume": True}


# -- declared ranges: each number's valid values are stated once, next to its field ---------------

NUMBERS = [
    (cls, f)
    for cls in (TrainConfig, NetConfig)
    for f in dataclasses.fields(cls)
    if typing.get_type_hints(cls)[f.name] in (int, float)
]


@pytest.mark.parametrize(("cls", "f"), NUMBERS, ids=lambda x: getattr(x, "name", getattr(x, "__name__", "")))
def test_every_number_declares_its_range_and_its_default_is_inside(cls: type, f: dataclasses.Field) -> None:
    bounds = {k: f.metadata[k] for k in BOUNDS if k in f.metadata}
    assert bounds, f"{cls.__name__}.{f.name} declares no range (min=, max=, above=, below=)"
    assert bounds_problem(f.default, bounds) is None
    for preset in PRESETS:
        assert bounds_problem(getattr(NetConfig.from_preset(preset), f.name, f.default), bounds) is None


def test_the_help_of_each_option_shows_its_range() -> None:
    options = {p.name: p for p in train_main.params}
    assert options["log_every"].help.endswith("[default: 50; >= 1]")
    assert options["val_fraction"].help.endswith("[default: 0.1; >= 0 and < 0.5]")
    assert options["lr"].help.endswith("[default: 0.0001; > 0]")
    assert "[default: the preset's; >= 1]" in options["stargan_conv_dim"].help


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TrainConfig(log_every=0), "--log-every must be >= 1, got 0"),
        (lambda: TrainConfig(gan_lr=math.nan), "--gan-lr must be > 0, got nan"),
        (lambda: TrainConfig(minutes=-math.inf), "--minutes must be >= 0, got -inf"),
        (lambda: TrainConfig(beta2=1.0), "--beta2 must be >= 0 and < 1, got 1"),
        (lambda: TrainConfig(seed=2**32), "--seed must be >= 0 and <= 4294967295, got 4294967296"),
        (lambda: TrainConfig(epochs=2.5), "--epochs must be a whole number, got 2.5"),
        (lambda: TrainConfig(use_q="no"), "--use-q must be true or false, got 'no'"),
        (lambda: NetConfig(stargan_repeat=-1), "--gan-repeat must be >= 0, got -1"),
        (lambda: NetConfig(code_channels=0), "net.code_channels must be >= 1, got 0"),
        (lambda: NetConfig(width=math.nan), "net.width must be > 0, got nan"),
        (lambda: TrainConfig.from_dict({"net": {"q_out": "16"}}), "net.q_out must be a whole number, got '16'"),
    ],
)
def test_a_config_refuses_a_value_outside_its_declared_range(make: Callable[[], object], message: str) -> None:
    with pytest.raises(LeedError, match=f"^{re.escape(message)}$"):
        make()


def test_a_float_field_takes_an_int_and_the_edges_of_its_range() -> None:
    cfg = TrainConfig(lr=1, val_fraction=0, beta1=0, lambda_q=0, minutes=0, seed=2**32 - 1, batch_size=2)
    assert cfg.resolved().lr == 1 and cfg.seed == 2**32 - 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"log_every": "fifty"}', "log_every must be a whole number, got 'fifty'"),
        ('{"lr": NaN}', "lr must be > 0, got nan"),
        ('{"net": {"stargan_conv_dim": 0}}', "net.stargan_conv_dim must be >= 1, got 0"),
        ('{"gazes": [1]}', "gazes must be a list of strings, got (1,)"),
        ('{"log_everyy": 5}', "unknown config key 'log_everyy' (did you mean 'log_every'?)"),
        ("[1]", "not a run config (a JSON object of options, got list)"),
        ('{"net": "tiny"}', "net must be a table of the architecture's fields, got 'tiny'"),
    ],
)
def test_a_saved_config_with_a_bad_value_names_the_file_and_the_key(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(LeedError, match=f"^{re.escape(f'{path}: {message}')}; fix it in that file or start a new run$"):
        TrainConfig.load(path)
