"""`run_eval`: the exact protocol of `leed-eval` end to end (see the package doc): measure every
method on the same pairs, draw the figures, write `metrics.json`, the PNGs and `report.md`."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from leed_export.evaluate import figures, metrics
from leed_export.evaluate.config import EvalConfig
from leed_export.evaluate.data import (
    EvalData,
    Pairs,
    as_tensor,
    load_data,
    plan_pairs,
    true_neutrals,
    verification_triplets,
)
from leed_export.evaluate.editors import Editor, TorchEditor, baseline_editor, open_model, run_edits
from leed_export.evaluate.report import render_report
from leed_runtime.errors import LeedError
from leed_train.data.names import EXPRESSIONS
from leed_train.features import load_feature_model
from leed_train.run import write_json
from leed_train.stage_neutralizer import neutral_targets

PROFILE_ANGLES = ("045", "135")
ORACLE_ROW = "LEED from true neutral faces (oracle stage 1)"


def run_eval(cfg: EvalConfig) -> dict:
    """Measure, draw and write `metrics.json`, the PNG figures and `report.md`; return the metrics."""
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    editors, split_path = open_model(cfg.model_dir, cfg)
    editors += [baseline_editor(b, cfg) for b in cfg.baselines]
    labels = [e.label for e in editors]
    if len(set(labels)) < len(labels):
        raise LeedError(f"--baselines: rows {labels} repeat a name; give each run once, in folders named apart")
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "eval_config.json", asdict(cfg))
        data = load_data(cfg, split_path)
        pairs = plan_pairs(data, cfg.faces, cfg.seed)

        # classifiers on real training images; everything real they are compared against
        clf = metrics.fit_classifiers(cfg, data)
        held = list(range(data.n_held))
        test_x = metrics.downsample(data.crops[held], cfg.classifier_size)
        test_y = np.array([EXPRESSIONS.index(data.pool[i].expression) for i in held])
        _, expr_feats = metrics.predict(clf["expr"], test_x)
        triplets = verification_triplets(data, pairs, cfg.seed)
        _, id_same = metrics.predict(clf["probe"], metrics.downsample(data.crops[triplets[1]], cfg.classifier_size))
        _, id_other = metrics.predict(clf["probe"], metrics.downsample(data.crops[triplets[2]], cfg.classifier_size))
        inception = load_feature_model(cfg.inception, "cpu") if cfg.inception else None
        real = {"test_x": test_x, "test_y": test_y, "expr_feats": expr_feats, "triplets": triplets}
        real.update(id_same=id_same, id_other=id_other)
        if inception is not None:
            real["inception"] = metrics.inception_features(inception, as_tensor(data.crops[held]))

        # every method's edits of the same pairs, measured the same way; the truth as a ceiling
        truth = data.crops[pairs.truth]
        edits = {e.label: run_edits(e, data.crops, pairs.face, pairs.ref, cfg.alpha) for e in editors}
        rows = {
            label: metrics.method_metrics(cfg, images, truth, pairs, clf, real, inception)
            for label, images in edits.items()
        }
        targets, has = neutral_targets(data.pool, data.crops)  # each image's own neutral photo, warped once
        neutrals = true_neutrals(pairs, targets, has) if isinstance(editors[0], TorchEditor) else None
        if neutrals is not None:  # stage 2 alone: what a perfect stage 1 would give this run
            oracle = editors[0].edit_from_neutrals(
                as_tensor(neutrals[0]), as_tensor(data.crops[pairs.ref]), as_tensor(neutrals[1]), cfg.alpha
            )
            rows[ORACLE_ROW] = metrics.method_metrics(cfg, oracle, truth, pairs, clf, real, inception)
        rows["Ground truth (ceiling)"] = metrics.method_metrics(
            cfg, as_tensor(truth), truth, pairs, clf, real, inception
        )
        neutralizer = metrics.neutralizer_metrics(cfg, editors[0], data, clf, targets, has)
        if neutralizer is None:
            data.notes.append("no held-out expressive image has its subject's neutral photo: neutralizer not measured")
        drawn = _draw(out, cfg, editors[0], data, pairs, edits, truth)  # the first editor is MODEL_DIR's LEED
    finally:
        for e in editors:
            e.close()

    result = {
        "model_dir": cfg.model_dir,
        "alpha": cfg.alpha,
        "data": {
            "data_dir": cfg.data_dir,
            "held_out_subjects": sorted({s.subject for s in data.pool[: data.n_held]}),
            "held_out_images": data.n_held,
            "reference_pool": "held-out" if len(data.pool) == data.n_held else "held-out + training stand-ins",
            "pairs": int(len(pairs.face)),
            "pairs_without_truth_skipped": pairs.skipped,
            "notes": data.notes,
        },
        "classifiers": {
            "size": cfg.classifier_size,
            "width": cfg.classifier_width,
            "epochs": cfg.classifier_epochs,
            "training_images": len(clf["train_x"]),
            "probe_subjects": clf["probe_subjects"],
        },
        "R": 100 * metrics.accuracy(clf["expr"], test_x, test_y),
        "methods": rows,
        "neutralizer": neutralizer,
        "fid": "computed" if inception is not None else "not computed (no --inception checkpoint)",
        "figures": {k: v.name for k, v in drawn.items()},
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_json(out / "metrics.json", result)
    (out / "report.md").write_text(render_report(result))
    return result


def _draw(
    out: Path, cfg: EvalConfig, main: Editor, data: EvalData, pairs: Pairs, edits: dict, truth: np.ndarray
) -> dict[str, Path]:
    """The figures of `main` (MODEL_DIR's LEED): grid, profile, strips, t-SNE, and every method's
    edits of the first pairs side by side (ablation)."""
    inputs = figures.figure_inputs(data, cfg.figure_inputs, ("090",))
    drawn = {"grid": figures.transfer_grid(out / "grid.png", main, data, inputs, None, cfg.alpha)}
    profile = figures.figure_inputs(data, 2, PROFILE_ANGLES)
    if profile:
        drawn["profile"] = figures.transfer_grid(out / "profile.png", main, data, profile, "090", cfg.alpha)
    else:
        data.notes.append("no held-out image at angles 045/135: profile figure skipped")
    drawn["strips"] = figures.strips(out / "strips.png", main, data, pairs, cfg.figure_inputs)
    drawn["tsne"] = figures.tsne_figure(out / "tsne.png", main, data, cfg)
    shown = np.arange(min(8, len(pairs.face)))
    ablation = [("input", list(data.crops[pairs.face[shown]])), ("reference", list(data.crops[pairs.ref[shown]]))]
    ablation += [(label, list(figures.to_uint8(images[shown]))) for label, images in edits.items()]
    ablation.append(("ground truth", list(truth[shown])))
    drawn["ablation"] = figures.image_grid(
        out / "ablation.png", ablation, [f"to {EXPRESSIONS[t]}" for t in pairs.target[shown]]
    )
    return drawn
