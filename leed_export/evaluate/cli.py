"""`leed-eval MODEL_DIR DATA_DIR --out REPORT_DIR`: the evaluation report of a run or an export,
by the exact protocol (`run.run_eval`) or the real one (`real.run_real_eval`)."""

from __future__ import annotations

import click
from click.core import ParameterSource

from leed_export.evaluate.config import DEFAULT_GATE, EvalConfig
from leed_export.evaluate.real import RealEvalConfig, run_real_eval
from leed_export.evaluate.run import run_eval
from leed_runtime.errors import LeedError, handle_errors
from leed_train.data.index import scan

PROTOCOLS = ("auto", "exact", "real")
EXACT_ONLY = ("subjects", "faces", "baselines", "inception", "classifier_epochs")
EVAL_EXAMPLE = """
\b
Examples:
  leed-eval runs/small data/synth --out reports/small
  leed-eval runs/small data/synth --out reports/ablation --baselines runs/small-noq --baselines runs/small-nos
  leed-eval exports/small data/synth --out reports/small-onnx
  leed-eval runs/tw data/faces-tw --out reports/tw --residual-edit --compare exports/tw
"""


def choose_protocol(protocol: str, data_dir: str) -> str:
    """`auto`: `real` for a faces-tw folder (real people, no exact ground truth), else `exact`."""
    if protocol != "auto":
        return protocol
    return "real" if scan(data_dir, detect=False).format == "faces-tw" else "exact"


@click.command(epilog=EVAL_EXAMPLE, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("model_dir")
@click.argument("data_dir")
@click.option("--out", required=True, help="Report folder (metrics.json, figures, report.md).")
@click.option(
    "--protocol",
    type=click.Choice(PROTOCOLS),
    default="auto",
    show_default=True,
    help="exact: held-out subjects with an exact ground truth (synthetic, RaFD); real: real people judged by "
    "fer and dlib (needs the [eval] extra and `make weights`); auto: real for a faces-tw folder, else exact.",
)
@click.option("--subjects", type=int, default=6, show_default=True, help="Held-out subjects measured (exact).")
@click.option("--faces", type=int, default=48, show_default=True, help="Inputs edited toward every other expression.")
@click.option(
    "--baselines", multiple=True, help="A run trained with --no-q / --no-siamese: one row each (repeat the option)."
)
@click.option(
    "--compare",
    multiple=True,
    metavar="MODEL_DIR",
    help="Real protocol: another run or export measured on the same pairs (repeat the option).",
)
@click.option(
    "--inception",
    default="",
    help="TorchScript/ONNX Inception feature model (B,3,299,299 in [-1,1] -> B,2048) for real FID; none ships here.",
)
@click.option("--classifier-epochs", type=int, default=6, show_default=True, help="Epochs of each classifier.")
@click.option(
    "--alpha",
    type=float,
    default=1.0,
    show_default=True,
    help="Edit strength of every measured edit, as leed-run's --alpha (the paper's tables: 1).",
)
@click.option(
    "--residual-edit",
    is_flag=True,
    help="A training run's edit as leed-export --residual-edit builds it (an export's is fixed when exported).",
)
@click.option(
    "--residual-gate",
    type=float,
    default=DEFAULT_GATE,
    show_default=True,
    help="With --residual-edit: as leed-export --residual-gate.",
)
@click.option("--device", default="cpu", show_default=True, help="cpu | cuda | auto (PyTorch runs).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.pass_context
@handle_errors
def eval_main(
    ctx: click.Context,
    model_dir: str,
    data_dir: str,
    out: str,
    protocol: str,
    baselines: tuple[str, ...],
    compare: tuple[str, ...],
    **opts: object,
) -> None:
    """Measure how MODEL_DIR edits expressions of held-out people (exact: SSIM/PSNR, expression
    accuracy, FD-expr, identity; real: fer's expression, dlib's identity, detail, geometry)."""
    protocol = choose_protocol(protocol, data_dir)
    given = [f"--{name.replace('_', '-')}" for name in EXACT_ONLY if _given(ctx, name)]
    if protocol == "real" and given:
        raise LeedError(f"{', '.join(given)}: options of the exact protocol; the real protocol takes --compare")
    if protocol == "exact" and compare:
        raise LeedError("--compare is for the real protocol (--protocol real); the exact protocol takes --baselines")
    if protocol == "real":
        _real(model_dir, data_dir, out, compare, opts)
        return
    cfg = EvalConfig(model_dir=model_dir, data_dir=data_dir, out=out, baselines=tuple(baselines), **opts)  # type: ignore[arg-type]
    result = run_eval(cfg)
    leed = next(iter(result["methods"].values()))
    click.echo(
        f"leed-eval: {result['data']['pairs']} pairs, SSIM {leed['ssim']:.4f}, PSNR {leed['psnr']:.2f} dB, "
        f"R {result['R']:.1f}%, G {leed['G']:.1f}%, R+G {leed['R+G']:.1f}%, FD-expr {leed['fd_expr']:.3f}, "
        f"ID {leed['id_verification']:.1f}%{'' if cfg.alpha == 1 else f' at alpha {cfg.alpha:g}'} "
        f"({result['seconds']} s); report in {out}/report.md"
    )


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)


def _real(model_dir: str, data_dir: str, out: str, compare: tuple[str, ...], opts: dict) -> None:
    kept = {k: opts[k] for k in ("alpha", "seed", "device", "residual_edit", "residual_gate")}
    cfg = RealEvalConfig(model_dirs=[model_dir, *compare], data_dir=data_dir, out=out, **kept)  # type: ignore[arg-type]
    result = run_real_eval(cfg)
    label, row = next(iter(result["rows"].items()))
    alpha = "" if cfg.alpha == 1 else f" at alpha {cfg.alpha:g}"
    click.echo(
        f"leed-eval (real): {result['data']['pairs']} edits of {len(result['data']['heldout_people'])} held-out "
        f"people; {label}: expression {row['expression']:.1f}% ({row['expression_of_ceiling']:.0f}% of ceiling), "
        f"same person {row['same_person_0.6']:.1f}%, detail {row['detail']:.2f}, toward {row['toward']:.1f}%{alpha} "
        f"({result['seconds']} s); report in {out}/report.md"
    )
