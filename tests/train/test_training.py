"""End-to-end training on the tiny preset: stages, losses falling, exact resume, DDP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from leed_train.checkpoint import latest_checkpoint
from leed_train.cli import train_main
from leed_train.config import TrainConfig
from leed_train.stage_leed import base_lr

TINY = ["--preset", "tiny", "--device", "cpu", "--workers", "0", "--perceptual", "pixels", "--log-every", "1"]


def _train(args: list[str]) -> None:
    result = CliRunner().invoke(train_main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output


def _stats(run: Path, stage: str, key: str) -> list[float]:
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    return [r[key] for r in rows if r["stage"] == stage and key in r]


@pytest.fixture(scope="module")
def psi_run(synth_psi_faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "psi"
    _train([str(synth_psi_faces), "--out", str(out), "--stage", "psi", "--batch-size", "8", "--max-steps", "6", *TINY])
    return out


@pytest.fixture(scope="module")
def stage1_run(synth_faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "stage1"
    _train([str(synth_faces), "--out", str(out), "--stage", "neutralizer", "--gan-iters", "6", *TINY])
    return out


def test_psi_stage_writes_a_feature_model(psi_run: Path) -> None:
    from leed_train.features import load_feature_model

    psi = load_feature_model(psi_run / "psi.safetensors", "cpu")
    feats = psi(torch.zeros(2, 3, 128, 128))
    assert feats.shape[0] == 2 and feats.ndim == 2
    report = json.loads((psi_run / "psi.json").read_text())
    assert 0.0 <= report["val_accuracy"] <= 1.0


def test_neutralizer_stage_caches_neutral_faces(stage1_run: Path) -> None:
    import numpy as np

    neutrals = np.load(stage1_run / "neutrals.npy")
    split = json.loads((stage1_run / "split.json").read_text())
    assert neutrals.shape == (len(split["train"]), 2, 128, 128, 3)
    assert neutrals.dtype == np.uint8 and neutrals.std() > 0
    assert latest_checkpoint(stage1_run, "neutralizer") is not None
    assert list((stage1_run / "samples").glob("neutralizer-*.png"))


def test_stage1_resume_with_more_iterations_trains_on(stage1_run: Path, synth_faces: Path, tmp_path: Path) -> None:
    """A finished stage 1 given a larger --gan-iters on --resume trains from its last step to the
    new end and re-caches the neutral faces with the further trained generator."""
    import numpy as np

    run = tmp_path / "run"
    shutil.copytree(stage1_run, run)
    before = np.load(run / "neutrals.npy")
    _train([str(synth_faces), "--out", str(run), "--resume", "--stage", "neutralizer", "--gan-iters", "6"])
    assert latest_checkpoint(run, "neutralizer").name.endswith("00000006")  # finished: nothing to do
    assert np.array_equal(np.load(run / "neutrals.npy"), before)
    _train([str(synth_faces), "--out", str(run), "--resume", "--stage", "neutralizer", "--gan-iters", "11"])
    assert latest_checkpoint(run, "neutralizer").name.endswith("00000011")
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["stage"] == "neutralizer"][-5:] == [6, 7, 8, 9, 10]  # G updates at step 9
    assert not np.array_equal(np.load(run / "neutrals.npy"), before)


@pytest.mark.parametrize("mask", [False, True], ids=["plain", "gan-mask"])
def test_stage1_pair_only_with_a_wider_generator(synth_faces: Path, tmp_path: Path, mask: bool) -> None:
    """--gan-pair-only trains G alone by L1 to each face's own neutral photo (the loss falls, no D
    loss is logged); --gan-conv-dim / --gan-repeat / --gan-mask shape G, and config.json records
    them, so the checkpoint loads into the generator that config describes."""
    from leed_train.config import TrainConfig
    from leed_train.stargan import Generator

    run = tmp_path / "run"
    _train([
        str(synth_faces), "--out", str(run), "--stage", "neutralizer", "--gan-pair-only", "--gan-iters", "40",
        "--gan-lr", "2e-3", "--gan-conv-dim", "12", "--gan-repeat", "1", *TINY, *(["--gan-mask"] if mask else []),
    ])  # fmt: skip
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert {k for r in rows for k in r} - {"stage", "step", "time", "lr"} == {"G_loss_pair"}
    pair = _stats(run, "neutralizer", "G_loss_pair")
    assert len(pair) == 40 and sum(pair[-8:]) < 0.8 * sum(pair[:8]), pair
    cfg = TrainConfig.load(run / "config.json")
    assert (cfg.net.stargan_conv_dim, cfg.net.stargan_repeat, cfg.net.stargan_mask) == (12, 1, mask)
    weights = load_file(str(latest_checkpoint(run, "neutralizer") / "weights.safetensors"))
    G = Generator(cfg.net, 2)
    G.load_state_dict({k[2:]: v for k, v in weights.items() if k.startswith("G.")})
    assert G.main[0].weight.shape[0] == 12 and G.main[-2].out_channels == (4 if mask else 3)


def test_gan_mask_needs_a_neutral_photo_to_match(synth_faces: Path, tmp_path: Path) -> None:
    """A masked G trained adversarially alone could copy its input; the flag is refused there.
    With `--gan-pair-l1` the StarGAN recipe trains the masked G (D and pair losses logged)."""
    run = tmp_path / "run"
    args = [str(synth_faces), "--out", str(run), "--stage", "neutralizer", "--gan-mask", *TINY]
    result = CliRunner().invoke(train_main, args)
    assert result.exit_code != 0 and "--gan-mask needs --gan-pair-only or --gan-pair-l1" in result.output
    assert not run.exists()
    _train([*args, "--gan-pair-l1", "10", "--gan-iters", "6", "--gan-n-critic", "2"])
    for key in ("D_loss_real", "D_loss_gp", "G_loss_fake", "G_loss_rec", "G_loss_pair"):
        assert _stats(run, "neutralizer", key), f"{key} never logged"
    assert json.loads((run / "config.json").read_text())["net"]["stargan_mask"] is True


def test_leed_stage_reconstruction_loss_falls(
    stage1_run: Path, psi_run: Path, tmp_path: Path, synth_faces: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(stage1_run, run)
    _train([
        str(synth_faces), "--out", str(run), "--stage", "leed", "--batch-size", "4", "--max-steps", "40",
        "--psi", str(psi_run / "psi.safetensors"), *TINY,
    ])  # fmt: skip
    recon = _stats(run, "leed", "L_recon")
    assert len(recon) >= 30
    assert sum(recon[-5:]) / 5 < 0.8 * sum(recon[:5]) / 5, recon
    for key in ("L_exp", "L_Q", "L_adv", "L_interp", "L_idt", "L_S", "critic_w", "critic_gp", "S_margin"):
        assert _stats(run, "leed", key), f"{key} never logged"
    assert list((run / "samples").glob("leed-*.png"))
    weights = load_file(str(latest_checkpoint(run, "leed") / "weights.safetensors"))
    assert {k.split(".")[0] for k in weights} >= {"E", "D", "X", "I", "critic", "Q", "S", "reducer"}
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["stage"] == "leed" and cfg["net"]["preset"] == "tiny"
    assert cfg["gan_iters"] == 6  # stage 1's options survive stage 2's config.json (default: 200000)


def test_warp_with_init_trains_a_fresh_flow_head(stage1_run: Path, synth_faces: Path, tmp_path: Path) -> None:
    """--warp --init: stage 2 starts from another run's weights, the flow head fresh (its last conv
    at zero), and L_warp (the neutral face moved by its own expression's flow against the
    expressive face) trains the head. Whether it learns is measured on real faces (model card)."""
    first = tmp_path / "first"
    shutil.copytree(stage1_run, first)
    _train([str(synth_faces), "--out", str(first), "--stage", "leed", "--batch-size", "4", "--max-steps", "2", "--no-q", *TINY])  # fmt: skip
    run = tmp_path / "warp"
    shutil.copytree(stage1_run, run)
    _train([
        str(synth_faces), "--out", str(run), "--stage", "leed", "--batch-size", "4", "--max-steps", "6", "--no-q",
        "--warp", "--init", str(first), *TINY,
    ])  # fmt: skip
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["net"]["warp"] is True and cfg["init"] == str(first)
    warp = _stats(run, "leed", "L_warp")
    assert len(warp) == 6 and all(0 < v < 10 for v in warp)
    before = load_file(str(latest_checkpoint(first, "leed") / "weights.safetensors"))
    after = load_file(str(latest_checkpoint(run, "leed") / "weights.safetensors"))
    assert {k for k in after if k not in before} == {f"D.flow_head.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")}
    assert after["D.flow_head.2.weight"].abs().max() > 0  # started at zero, moved by L_warp


def test_resume_is_bit_exact(stage1_run: Path, synth_faces: Path, tmp_path: Path) -> None:
    """N steps straight == N/2 steps, a new process-like start with --resume, N/2 more."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    shutil.copytree(stage1_run, straight)
    shutil.copytree(stage1_run, split)
    common = [str(synth_faces), "--stage", "leed", "--batch-size", "4", "--no-q", *TINY]
    _train([*common, "--out", str(straight), "--max-steps", "6"])
    _train([*common, "--out", str(split), "--max-steps", "3"])
    _train([str(synth_faces), "--out", str(split), "--resume", "--max-steps", "6", "--stage", "leed"])
    a = load_file(str(latest_checkpoint(straight, "leed") / "weights.safetensors"))
    b = load_file(str(latest_checkpoint(split, "leed") / "weights.safetensors"))
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]


def test_ablation_switches_drop_their_networks(stage1_run: Path, synth_faces: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(stage1_run, run)
    _train(
        [
            str(synth_faces),
            "--out",
            str(run),
            "--stage",
            "leed",
            "--batch-size",
            "4",
            "--max-steps",
            "2",
            "--no-q",
            "--no-siamese",
            *TINY,
        ]
    )
    assert not _stats(run, "leed", "L_Q") and not _stats(run, "leed", "L_S")
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["use_q"] is False and cfg["use_siamese"] is False


def test_missing_psi_is_a_one_line_error(stage1_run: Path, synth_faces: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(stage1_run, run)
    result = CliRunner().invoke(
        train_main, [str(synth_faces), "--out", str(run), "--stage", "leed", "--max-steps", "1", *TINY]
    )
    assert result.exit_code == 2
    assert "--psi" in result.output and "Traceback" not in result.output


def test_existing_run_is_not_overwritten(stage1_run: Path, synth_faces: Path) -> None:
    result = CliRunner().invoke(
        train_main, [str(synth_faces), "--out", str(stage1_run), "--stage", "neutralizer", *TINY]
    )
    assert result.exit_code == 2 and "--resume" in result.output


def test_stage2_with_another_preset_than_stage1_is_refused(stage1_run: Path, synth_faces: Path) -> None:
    args = [str(synth_faces), "--out", str(stage1_run), "--stage", "leed", "--max-steps", "1", *TINY]
    result = CliRunner().invoke(train_main, [*args, "--preset", "small"])  # the later --preset wins
    assert result.exit_code == 2 and "--preset tiny" in result.output and "Traceback" not in result.output


def test_stage2_without_a_preset_takes_the_run_s(stage1_run: Path, synth_faces: Path) -> None:
    """`--stage leed` in a folder whose neutralizer trained: no --preset means the run's."""
    args = [str(synth_faces), "--out", str(stage1_run), "--stage", "leed", "--device", "cpu", "--dry-run"]
    result = CliRunner().invoke(train_main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    cfg = json.loads(result.output)
    assert cfg["preset"] == "tiny" and cfg["net"]["preset"] == "tiny" and cfg["gan_iters"] == 6


def test_a_run_with_an_old_config_resumes(synth_faces: Path, tmp_path: Path) -> None:
    """A neutralizer whose config.json has the layout earlier versions wrote (runs/tw-g's, with
    `gan_conv_dim` / `gan_repeat` / `gan_mask` beside `net`) resumes from its checkpoint into
    the same generator and trains on; the config is then written in the current layout."""
    old = json.loads((Path(__file__).parent / "configs" / "v0-faces-tw-neutralizer.json").read_text())
    assert (old["gan_conv_dim"], old["gan_repeat"], old["gan_mask"], old["gan_pair_only"]) == (16, 4, True, True)
    run = tmp_path / "run"
    _train([
        str(synth_faces), "--out", str(run), "--stage", "neutralizer", "--gan-pair-only", "--gan-mask",
        "--gan-conv-dim", "16", "--gan-repeat", "4", "--gan-iters", "2", "--gan-lr", "1e-3", *TINY,
    ])  # fmt: skip
    here = {
        "data_dir": str(synth_faces),
        "out": str(run),
        "device": "cpu",
        "amp": "off",
        "gan_iters": 2,
        "log_every": 1,
    }
    (run / "config.json").write_text(json.dumps({**old, **here}, indent=2, sort_keys=True) + "\n")
    _train([str(synth_faces), "--out", str(run), "--resume", "--gan-iters", "4"])
    assert latest_checkpoint(run, "neutralizer").name.endswith("00000004")
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["stage"] == "neutralizer"] == [0, 1, 2, 3]  # 2, 3: after the resume
    saved = json.loads((run / "config.json").read_text())
    since = json.loads((Path(__file__).parent / "configs" / "since-v0.json").read_text())
    assert saved == {
        **{k: v for k, v in old.items() if k not in since["moved"]},
        **here,
        "gan_iters": 4,
        **since["added"],  # fields added since, at the default that keeps the old run as it was
        "net": {**old["net"], **since["net_added"]},
        "resume": True,
    }


@pytest.mark.slow
def test_ddp_two_ranks_on_gloo_agree(stage1_run: Path, synth_faces: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(stage1_run, run)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
        "-m", "leed_train.cli", str(synth_faces), "--out", str(run), "--stage", "leed", "--batch-size", "4",
        "--max-steps", "3", "--no-q", *TINY,
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check = json.loads((run / "ddp_check.json").read_text())
    assert check["world"] == 2 and len(set(check["digests"])) == 1


def test_neutralizer_with_full_expression_labels(synth_faces: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _train(
        [
            str(synth_faces),
            "--out",
            str(run),
            "--stage",
            "neutralizer",
            "--gan-iters",
            "2",
            "--gan-labels",
            "expression",
            *TINY,
        ]
    )
    weights = load_file(str(latest_checkpoint(run, "neutralizer") / "weights.safetensors"))
    assert weights["D.cls.weight"].shape[0] == 8  # the classifier head has RaFD's 8 expressions
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))


def test_the_decoder_and_the_extractor_take_their_own_learning_rates() -> None:
    cfg = TrainConfig(data_dir="d", out="o", lr=5e-5, lr_decoder=1e-3, lr_extractor=2e-4)
    assert {k: base_lr(cfg, k) for k in "EDXI"} == {"E": 5e-5, "D": 1e-3, "X": 2e-4, "I": 5e-5}
    plain = TrainConfig(data_dir="d", out="o", lr=5e-5)  # 0 = --lr, as runs before the flags
    assert {base_lr(plain, k) for k in "EDXI"} == {5e-5}
