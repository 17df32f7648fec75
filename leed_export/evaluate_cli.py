"""`leed-eval MODEL_DIR DATA_DIR --out REPORT_DIR`: the evaluation report of a run or an export."""

from __future__ import annotations

import click

from leed_runtime.errors import handle_errors

EVAL_EXAMPLE = """
\b
Examples:
  leed-eval runs/small data/synth --out reports/small
  leed-eval runs/small data/synth --out reports/ablation --baselines runs/small-noq --baselines runs/small-nos
  leed-eval exports/small data/synth --out reports/small-onnx
"""


@click.command(epilog=EVAL_EXAMPLE, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("model_dir")
@click.argument("data_dir")
@click.option("--out", required=True, help="Report folder (metrics.json, PNG figures, report.md).")
@click.option("--subjects", type=int, default=6, show_default=True, help="Held-out subjects measured.")
@click.option("--faces", type=int, default=48, show_default=True, help="Inputs edited toward every other expression.")
@click.option(
    "--baselines", multiple=True, help="A run trained with --no-q / --no-siamese: one row each (repeat the option)."
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
@click.option("--device", default="cpu", show_default=True, help="cpu | cuda | auto (PyTorch runs).")
@click.option("--seed", type=int, default=0, show_default=True)
@handle_errors
def eval_main(model_dir: str, data_dir: str, out: str, baselines: tuple[str, ...], **opts: object) -> None:
    """Measure SSIM/PSNR, expression accuracy, FD-expr and identity preservation on held-out subjects."""
    from leed_export.evaluate import EvalConfig, run_eval

    cfg = EvalConfig(model_dir=model_dir, data_dir=data_dir, out=out, baselines=tuple(baselines), **opts)  # type: ignore[arg-type]
    result = run_eval(cfg)
    leed = next(iter(result["methods"].values()))
    click.echo(
        f"leed-eval: {result['data']['pairs']} pairs, SSIM {leed['ssim']:.4f}, PSNR {leed['psnr']:.2f} dB, "
        f"R {result['R']:.1f}%, G {leed['G']:.1f}%, R+G {leed['R+G']:.1f}%, FD-expr {leed['fd_expr']:.3f}, "
        f"ID {leed['id_verification']:.1f}%{'' if cfg.alpha == 1 else f' at alpha {cfg.alpha:g}'} "
        f"({result['seconds']} s); report in {out}/report.md"
    )
