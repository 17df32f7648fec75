"""`leed-export`: a trained run -> an export folder (ONNX, FP16, TensorRT plans, manifest.json),
every graph gated on its error against PyTorch on real face crops.

`run_export(cfg)` reads top to bottom: validate -> load the run and real crops -> per graph
export/simplify/check/save/parity -> whole-chain parity -> FP16 -> detector -> engines ->
manifest -> rename the temp folder into place. A failure anywhere leaves no output folder.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import click
import numpy as np
import torch

from leed_export import __version__, fp16, onnx_export, trt_build
from leed_export.detector import export_detector
from leed_export.graphs import (
    GRAPHS,
    OPENCV_GRAPHS,
    SPECS,
    build_graphs,
    build_opencv_graphs,
    calibrate_fit,
    real_feeds,
    tensor_shape,
)
from leed_export.parity import FP16, FP32, Comparison, Tolerance, compare
from leed_runtime.backends.select import engine_artifact_name
from leed_runtime.backends.table import open_backend
from leed_runtime.errors import LeedError
from leed_runtime.face.align import template
from leed_runtime.limits import check_number
from leed_runtime.manifest import Artifact, EngineInfo, Manifest, TensorSpec, artifact_for, verify
from leed_runtime.pipeline import FIT_FULL, FIT_NONE
from leed_train.data.cache import CropCache
from leed_train.data.datasets import to_tensor
from leed_train.data.index import load_split
from leed_train.model import (
    DEFAULT_RESIDUAL_GATE,
    DEFAULT_WARP_PAINT,
    RESIDUAL_BASES,
    RESIDUAL_GATE,
    WARP_PAINT,
    EditStyle,
    Leed,
)
from leed_train.trained import TrainedRun, load_trained

CONFIG_FILE = "export_config.json"
CHAIN = ("neutralizer", "encoder", "extractor", "interpolator", "decoder")


@dataclass
class ExportConfig:
    """Every option of `leed-export`; flags map 1:1 to these fields."""

    run_dir: str = ""
    out: str = ""
    fp16: bool = False
    engine: str = "none"  # none | tensorrt | tensorrt-rtx
    batch: str = "1:8:32"  # engine profile min:opt:max
    opset: int | None = None  # None: the exporter's default
    data: str = ""  # dataset folder when the run's data_dir moved
    samples: int = 8  # real crops per parity check
    force: bool = False  # replace a non-empty --out
    opencv: bool = False  # also batch-1 variants of reference/edit that OpenCV 4.6's DNN importer loads
    residual_edit: bool = False  # edit = D(I(c, dexp)) + (G(face) - D(I(c, 0))) (Leed.decode_edit; not in the paper)
    residual_gate: float = (
        DEFAULT_RESIDUAL_GATE  # with residual_edit: fade that detail out where D changes the face this much; 0: never
    )
    residual_base: str = "neutral"  # with residual_edit / warp_edit: whose detail is kept, G(face) or the input face
    warp_edit: bool = False  # edit = the base moved by D's flow (a --warp run; Leed.decode_edit; not in the paper)
    warp_paint: float = DEFAULT_WARP_PAINT  # with warp_edit: how much of D's change beyond the motion is painted on

    def style(self) -> EditStyle:
        """The edit these options ask for (`Leed.decode_edit`)."""
        gate = self.residual_gate if self.residual_edit else 0.0
        return EditStyle(self.residual_edit, gate, self.residual_base, self.warp_edit, self.warp_paint)

    def validate(self) -> trt_build.BatchProfile | None:
        """Check every option before any work; returns the engine profile (None without --engine)."""
        run_dir, out = Path(self.run_dir), Path(self.out)
        if not (run_dir / "config.json").is_file():
            raise LeedError(f"RUN_DIR {run_dir}: not a training run (no config.json); train one with `leed-train`")
        if not self.out:
            raise LeedError("--out is required: the export folder to write (e.g. --out exports/small)")
        if out.resolve() == run_dir.resolve() or run_dir.resolve() in out.resolve().parents:
            raise LeedError(f"--out {out} is inside RUN_DIR {run_dir}; choose a folder outside the run")
        if out.resolve() in run_dir.resolve().parents:
            raise LeedError(
                f"--out {out} contains RUN_DIR {run_dir}: replacing it would delete the run; choose another folder"
            )
        if out.exists() and not out.is_dir():
            raise LeedError(f"--out {out} is a file; choose a folder")
        if out.is_dir() and any(out.iterdir()):
            if not self.force:
                raise LeedError(f"--out {out} is not empty; pass --force to replace it, or choose another folder")
            if not (out / "manifest.json").is_file():
                raise LeedError(
                    f"--out {out} is not an earlier export (no manifest.json): --force replaces only exports; "
                    "choose a new or empty folder"
                )
        if self.opset is not None and not onnx_export.MIN_OPSET <= self.opset <= onnx_export.max_opset():
            raise LeedError(
                f"--opset {self.opset} is unsupported; choose {onnx_export.MIN_OPSET}..{onnx_export.max_opset()}"
            )
        if self.data and not Path(self.data).is_dir():
            raise LeedError(f"--data {self.data}: no such folder; pass the dataset the run was trained on")
        if self.residual_base not in RESIDUAL_BASES:
            raise LeedError(f"--residual-base {self.residual_base!r}: choose {' or '.join(RESIDUAL_BASES)}")
        if self.residual_base != "neutral" and not (self.residual_edit or self.warp_edit):
            raise LeedError(
                f"--residual-base {self.residual_base} only applies to --residual-edit or --warp-edit; add one or drop it"
            )
        if self.residual_edit and self.warp_edit:
            raise LeedError("--residual-edit and --warp-edit are two ways to make the edit; choose one")
        check_number("--warp-paint", self.warp_paint, **WARP_PAINT)
        if self.warp_paint != ExportConfig.warp_paint and not self.warp_edit:
            raise LeedError(f"--warp-paint {self.warp_paint} only applies to --warp-edit; add it or drop it")
        if self.warp_edit and self.opencv:
            raise LeedError(
                "--opencv with --warp-edit: OpenCV 4.6's DNN importer has no GridSample, so it cannot run the warp; "
                "export the OpenCV graphs with --residual-edit instead"
            )
        check_number("--residual-gate", self.residual_gate, **RESIDUAL_GATE)  # 0 (off) .. 2, in [-1, 1] image units
        if self.residual_gate != ExportConfig.residual_gate and not self.residual_edit:
            raise LeedError(
                f"--residual-gate {self.residual_gate} only applies to --residual-edit; add it or drop the gate"
            )
        if not 2 <= self.samples <= 64:
            raise LeedError(f"--samples {self.samples}: choose 2..64 real crops for the parity checks")
        if self.fp16:
            try:
                import onnxconverter_common  # noqa: F401
            except ImportError:
                raise LeedError("--fp16 needs onnxconverter-common: pip install 'leed[train]'") from None
        if self.engine == "none":
            if self.batch != ExportConfig.batch:
                raise LeedError(f"--batch {self.batch} only applies to engines; add --engine tensorrt|tensorrt-rtx")
            return None
        if self.engine not in trt_build.LIBRARIES:
            raise LeedError(f"--engine {self.engine!r} is unknown; choose none, tensorrt or tensorrt-rtx")
        profile = trt_build.parse_batch(self.batch)
        trt_build.load_library(self.engine)
        return profile


def recorded_style(source: dict) -> EditStyle:
    """The edit an export's `edit` graph computes, from its manifest's `source` (`run_export` writes it)."""
    return EditStyle(
        residual=bool(source.get("residual_edit", False)),
        gate=float(source.get("residual_gate", 0.0)) if source.get("residual_edit") else 0.0,
        base=str(source.get("residual_base", "neutral")),
        warp=bool(source.get("warp_edit", False)),
        paint=float(source.get("warp_paint", DEFAULT_WARP_PAINT)),
    )


def run_export(cfg: ExportConfig) -> Path:
    """Export `cfg.run_dir` into `cfg.out`; returns the export folder. LeedError on any failure
    (a parity gate included), with nothing left behind."""
    profile = cfg.validate()
    started = time.perf_counter()
    out = Path(cfg.out)
    run = load_trained(cfg.run_dir)
    if cfg.warp_edit and not run.cfg.net.warp:
        raise LeedError(
            f"--warp-edit: {cfg.run_dir} was trained without --warp (its decoder has no flow head); "
            "drop --warp-edit or train with --warp"
        )
    train, val = _split(run, cfg)
    faces, references = _real_crops(run, cfg, train, val)
    alpha = torch.linspace(0.0, 1.5, len(faces))
    click.echo(
        f"leed-export: {cfg.run_dir} (preset {run.cfg.net.preset}) -> {out}; "
        f"parity on {len(faces)} real crops through onnxruntime-cpu"
    )

    tmp = out.parent / f".tmp-{out.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        (tmp / CONFIG_FILE).write_text(json.dumps(asdict(cfg), indent=2, sort_keys=True) + "\n")
        manifest = _new_manifest(run)
        manifest.source["residual_edit"] = cfg.residual_edit
        if cfg.residual_edit:
            manifest.source["residual_gate"] = cfg.residual_gate
        if cfg.warp_edit:
            manifest.source["warp_edit"] = True
            manifest.source["warp_paint"] = cfg.warp_paint
        if cfg.residual_edit or cfg.warp_edit:
            manifest.source["residual_base"] = cfg.residual_base
        graphs = build_graphs(run, cfg.style())
        manifest.source["fit"] = {
            **calibrate_fit(graphs["fit"], _training_crops(run, train)),
            "full_edit_below": FIT_FULL,
            "no_edit_above": FIT_NONE,
        }
        feeds = real_feeds(run, faces, references, alpha)
        with torch.no_grad():
            expected = {name: graphs[name](*feeds[name].values()).numpy() for name in GRAPHS}
        rows: list[tuple[str, Artifact, float]] = []
        models = {}

        # FP32 graphs, each gated against PyTorch on real crops.
        for name in GRAPHS:
            t0 = time.perf_counter()
            model = onnx_export.export_graph(graphs[name], SPECS[name], feeds[name], cfg.opset)
            model, note = onnx_export.simplify(model)
            onnx_export.set_metadata(model, _metadata(run, name, "fp32"))
            art = _write_graph(tmp, manifest, name, model, "fp32", None)
            comp = _gate(tmp, manifest, name, feeds[name], expected[name], FP32)
            models[name] = model
            rows.append((name, art, time.perf_counter() - t0))
            _report(art, rows[-1][2], comp, note)
        manifest.source["chain_parity"] = {"fp32": _chain_gate(tmp, manifest, run, faces, references, "", FP32)}

        # OpenCV variants (C++ hosts on OpenCV DNN): batch 1, gated like the others.
        if cfg.opencv:
            variants = build_opencv_graphs(run, cfg.style())
            one = {
                "reference.opencv": {"reference": references[:1]},
                "edit.opencv": {"face": faces[:1], "dexp": Leed.scale(feeds["edit"]["dexp"][:1], alpha[:1])},
            }
            for name in OPENCV_GRAPHS:
                t0 = time.perf_counter()
                with torch.no_grad():
                    want = variants[name](*one[name].values()).numpy()
                model = onnx_export.export_graph(variants[name], SPECS[name], one[name], cfg.opset, dynamic=False)
                onnx_export.set_metadata(model, _metadata(run, name, "fp32"))
                art = _write_graph(tmp, manifest, name, model, "fp32", name.removesuffix(".opencv"), batch=1)
                comp = _gate(tmp, manifest, name, one[name], want, FP32)
                rows.append((name, art, time.perf_counter() - t0))
                _report(art, rows[-1][2], comp, "batch 1, for OpenCV DNN")

        # FP16 graphs (norms and output layer FP32), gated against PyTorch FP32 the same way.
        if cfg.fp16:
            for name in GRAPHS:
                t0 = time.perf_counter()
                model = fp16.convert_fp16(models[name])
                onnx_export.set_metadata(model, _metadata(run, name, "fp16"))
                art = _write_graph(tmp, manifest, f"{name}.fp16", model, "fp16", name)
                comp = _gate(tmp, manifest, f"{name}.fp16", feeds[name], expected[name], FP16)
                rows.append((f"{name}.fp16", art, time.perf_counter() - t0))
                _report(art, rows[-1][2], comp, "norms + output layer kept FP32")
            manifest.source["chain_parity"]["fp16"] = _chain_gate(tmp, manifest, run, faces, references, ".fp16", FP16)

        # The MTCNN face detector (leed_export/detector.py): exported into every folder so the
        # runtime needs nothing else.
        t0 = time.perf_counter()
        for name, art in export_detector(tmp, opset=cfg.opset or onnx_export.MIN_OPSET).items():
            manifest.artifacts[name] = art
            rows.append((name, art, time.perf_counter() - t0))
            click.echo(
                f"{art.file:<44}{_mb(art.bytes):>9}  parity max {art.parity.get('max_abs', float('nan')):.1e} PASSED"
            )
            t0 = time.perf_counter()

        # TensorRT / TensorRT-RTX plans, one per ONNX graph (FP16 graphs give FP16 engines).
        if profile is not None:
            rows += _build_engines(tmp, manifest, cfg.engine, profile, out)

        manifest.save(tmp)
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _summary(rows, out, time.perf_counter() - started)
    return out


# -- steps -------------------------------------------------------------------------------------


def _split(run: TrainedRun, cfg: ExportConfig) -> tuple[list, list]:
    """The run's (train, val) samples, read once for the parity crops and the guard's calibration."""
    data = Path(cfg.data or run.cfg.data_dir)
    if not data.is_dir():
        raise LeedError(
            f"{run.run_dir / 'config.json'}: data_dir {data} is gone; pass --data DIR (the dataset the run was trained on)"
        )
    return load_split(run.run_dir / "split.json", data)


def _real_crops(run: TrainedRun, cfg: ExportConfig, train: list, val: list) -> tuple[torch.Tensor, torch.Tensor]:
    """`cfg.samples` face crops and as many reference crops from the run's own split
    (held-out subjects first), as float32 NCHW in [-1, 1]."""
    samples = val + train
    if len(samples) < 2 * cfg.samples:
        raise LeedError(f"--samples {cfg.samples}: the run's split has only {len(samples)} images; use fewer")
    picks = np.linspace(0, len(samples) - 1, 2 * cfg.samples).round().astype(int)
    images = _crops(run, [samples[i] for i in picks])
    return images[0::2].contiguous(), images[1::2].contiguous()


def _training_crops(run: TrainedRun, train: list, n: int = 512) -> torch.Tensor:
    """Up to `n` of the run's training crops (evenly spread): what the domain guard calls a face
    the model knows."""
    picks = np.unique(np.linspace(0, len(train) - 1, min(n, len(train))).round().astype(int))
    return _crops(run, [train[i] for i in picks])


def _crops(run: TrainedRun, samples: list) -> torch.Tensor:
    """Aligned crops of `samples` (the crop cache), float32 NCHW in [-1, 1]."""
    crops = CropCache(size=run.cfg.net.image_size).load_crops(samples, progress=False)
    return torch.stack([to_tensor(c) for c in crops])


def _heldout_subjects(split: Path) -> list[str]:
    """Sorted validation subjects of a run's split.json ([] when it has none)."""
    if not split.is_file():
        return []
    return sorted({str(s["subject"]) for s in json.loads(split.read_text()).get("val", [])})


def _new_manifest(run: TrainedRun) -> Manifest:
    size = run.cfg.net.image_size
    leed_ckpt = run.checkpoints["leed"]
    state = json.loads((leed_ckpt / "state.json").read_text())
    return Manifest(
        leed_version=__version__,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        preset=run.cfg.net.preset,
        source={
            "run_dir": str(run.run_dir.resolve()),
            "checkpoint": str(leed_ckpt.relative_to(run.run_dir)),
            "neutralizer_checkpoint": str(run.checkpoints["neutralizer"].relative_to(run.run_dir)),
            "step": int(state["step"]),
            "data_dir": run.cfg.data_dir,
            # subjects the model never saw: leed-eval measures on them when run_dir is gone
            "heldout_subjects": _heldout_subjects(run.run_dir / "split.json"),
        },
        image={
            "size": size,
            "layout": "NCHW",
            "color": "RGB",
            "dtype": "float32",
            "range": [-1.0, 1.0],
            "template": template(size).tolist(),
        },
        code={"channels": run.cfg.net.code_channels, "size": size // 16},
    )


def _metadata(run: TrainedRun, graph: str, precision: str) -> dict[str, str]:
    """What a host needs to feed the graph, in its `metadata_props` (Ultralytics-style)."""
    size = run.cfg.net.image_size
    return {
        "leed_version": __version__,
        "graph": graph,
        "precision": precision,
        "preset": run.cfg.net.preset,
        "source_checkpoint": str(run.checkpoints["leed"].relative_to(run.run_dir)),
        "neutralizer_checkpoint": str(run.checkpoints["neutralizer"].relative_to(run.run_dir)),
        "image_size": str(size),
        "layout": "NCHW",
        "color": "RGB",
        "dtype": "float32",
        "range": "[-1.0, 1.0]",
        "template": json.dumps(template(size).round(4).tolist()),
        "code_shape": json.dumps([run.cfg.net.code_channels, size // 16, size // 16]),
    }


def _write_graph(
    folder: Path,
    manifest: Manifest,
    name: str,
    model: object,
    precision: str,
    source: str | None,
    batch: int | str = "batch",
) -> Artifact:
    """Check and save one graph, and list it in the manifest."""
    file = f"{name}.onnx"
    onnx_export.check(model, file)
    onnx_export.save(model, folder / file)
    graph = name.removesuffix(".fp16")
    spec, size, code = SPECS[graph], manifest.image["size"], manifest.code["channels"]
    art = artifact_for(
        folder,
        file,
        format="onnx",
        precision=precision,
        inputs=[TensorSpec(n, tensor_shape(kind, size, code, batch), "float32") for n, kind in spec.inputs],
        outputs=[TensorSpec(n, tensor_shape(kind, size, code, batch), "float32") for n, kind in spec.outputs],
        opset=onnx_export.opset_of(model),
        source=source,
    )
    manifest.artifacts[name] = art
    return art


def _run(folder: Path, manifest: Manifest, name: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One call of artifact `name` through the runtime's own onnxruntime-cpu backend."""
    with open_backend("onnxruntime-cpu", folder, manifest, name) as backend:
        return {k: np.array(v) for k, v in backend.infer(feeds).items()}


def _gate(
    folder: Path,
    manifest: Manifest,
    name: str,
    feeds: dict[str, torch.Tensor],
    expected: np.ndarray,
    tolerance: Tolerance,
) -> Comparison:
    """Run artifact `name` on `feeds` and compare with PyTorch; record the numbers; LeedError beyond tolerance."""
    got = _run(folder, manifest, name, {k: v.numpy() for k, v in feeds.items()})
    (output,) = [n for n, _ in SPECS[name.removesuffix(".fp16")].outputs]
    comp = compare({output: expected}, got, tolerance, f"{name}.onnx")
    manifest.artifacts[name].parity = comp.record()
    _fail_unless(comp)
    return comp


def _chain_gate(
    folder: Path,
    manifest: Manifest,
    run: TrainedRun,
    faces: torch.Tensor,
    references: torch.Tensor,
    suffix: str,
    tolerance: Tolerance,
) -> dict[str, float]:
    """The five per-module graphs chained (as a host without the fused graphs would run them)
    against PyTorch's `TrainedRun.edit` (`Leed`), alpha 1."""

    def call(graph: str, **feeds: np.ndarray) -> np.ndarray:
        (output,) = [n for n, _ in SPECS[graph].outputs]
        return _run(folder, manifest, graph + suffix, feeds)[output]

    refs, face = references.numpy(), faces.numpy()
    dexp = call(
        "extractor",
        code=call("encoder", image=refs),
        neutral_code=call("encoder", image=call("neutralizer", image=refs)),
    )
    neutral_code = call("encoder", image=call("neutralizer", image=face))
    edited = call("decoder", code=call("interpolator", neutral_code=neutral_code, dexp=dexp))
    expected = run.edit(faces, references, alpha=1.0).numpy()
    comp = compare({"edited": expected}, {"edited": edited}, tolerance, f"chain{suffix} ({' -> '.join(CHAIN)})")
    click.echo(comp.lines()[0])
    _fail_unless(comp)
    return comp.record()


def _fail_unless(comp: Comparison) -> None:
    if comp.passed:
        return
    for line in comp.lines():
        click.echo(line)
    worst = max(comp.outputs, key=lambda o: o.max_abs)
    raise LeedError(
        f"{comp.label}: parity FAILED vs PyTorch: max abs {worst.max_abs:.2e} (tolerance {worst.tolerance.max_abs:.0e}), "
        f"median {worst.median_abs:.2e} (tolerance {worst.tolerance.median_abs:.0e}), {worst.nonfinite} NaN/Inf; "
        "nothing was written (check the run's checkpoints, try another --opset, or export without --fp16)"
    )


def _build_engines(
    folder: Path, manifest: Manifest, engine: str, profile: trt_build.BatchProfile, previous_out: Path
) -> list[tuple[str, Artifact, float]]:
    """One plan per ONNX graph under `engines/<engine>/`, the timing cache beside them (seeded
    from the folder being replaced, so a re-export reuses its timings)."""
    trt = trt_build.load_library(engine)
    library = trt_build.LIBRARIES[engine][1]
    gpu, capability = trt_build.gpu_info()
    engine_dir = folder / "engines" / engine
    cache = engine_dir / "timing.cache"
    previous = previous_out / "engines" / engine / "timing.cache"
    if previous.is_file():
        engine_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(previous, cache)
    if not trt_build.has_timing_cache(engine):
        click.echo(
            f"note: {engine}: no timing cache (its builder timing cache is a no-op; tactics are chosen at run time)"
        )
    target = f"on {gpu}, sm {capability}" if gpu else "no GPU here: built, not run"
    rows = []
    for name in [n for n in manifest.artifacts if n.removesuffix(".fp16") in GRAPHS]:
        source = manifest.artifacts[name]
        t0 = time.perf_counter()
        file = f"engines/{engine}/{name}.plan"
        trt_build.build_plan(engine, folder / source.file, folder / file, profile, cache)
        art = artifact_for(
            folder,
            file,
            format="plan",
            precision=source.precision,
            inputs=source.inputs,
            outputs=source.outputs,
            opset=source.opset,
            source=name,
            engine=EngineInfo(
                library=library,
                version=trt_build.library_version(trt),
                gpu=gpu,
                compute_capability=capability,
                profile=profile.as_dict(),
            ),
        )
        key = engine_artifact_name(name.removesuffix(".fp16"), library, source.precision == "fp16")
        manifest.artifacts[key] = art
        seconds = time.perf_counter() - t0
        rows.append((key, art, seconds))
        click.echo(
            f"{file:<44}{_mb(art.bytes):>9}{seconds:>7.2f} s  built (batch {profile.min}:{profile.opt}:{profile.max}, {target})"
        )
    return rows


def _replace(tmp: Path, out: Path) -> None:
    """Rename the finished temp folder onto `out` (an old `out` is removed only after)."""
    old = None
    if out.exists():
        old = out.parent / f".old-{out.name}-{os.getpid()}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old)


# -- output ------------------------------------------------------------------------------------


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _report(art: Artifact, seconds: float, comp: Comparison, note: str) -> None:
    status = "PASSED" if comp.passed else "FAILED"
    click.echo(
        f"{art.file:<44}{_mb(art.bytes):>9}{seconds:>7.1f} s  parity max {comp.max_abs:.1e} "
        f"median {comp.median_abs:.1e} {status}  ({note})"
    )


def _summary(rows: list[tuple[str, Artifact, float]], out: Path, seconds: float) -> None:
    click.echo(f"\n{'artifact':<22}{'file':<46}{'precision':<10}{'size':>9}{'time':>8}  parity max")
    for name, art, t in rows:
        parity = f"{art.parity['max_abs']:.1e}" if art.parity else "-"
        click.echo(f"{name:<22}{art.file:<46}{art.precision:<10}{_mb(art.bytes):>9}{t:>7.1f}s  {parity}")
    click.echo(f"\nleed-export: {len(rows)} artifacts in {seconds:.1f} s -> {out}/manifest.json")
    click.echo(f"next: leed-run --model {out} --video in.mp4 --ref smile.jpg")


# -- leed-export --check -----------------------------------------------------------------------


def check_export(folder: Path) -> None:
    """Re-verify an export folder against its manifest: hashes, `onnx.checker`, an onnxruntime
    smoke run of every ONNX graph on random inputs (shapes as listed, NaN/Inf), plans by hash.
    LeedError (one line) on the first mismatch."""
    import onnx

    manifest = verify(folder)
    rng = np.random.default_rng(0)
    for name, art in sorted(manifest.artifacts.items()):
        if art.format != "onnx":
            click.echo(f"{art.file:<44} sha256 OK ({art.format}, not runnable here)")
            continue
        onnx_export.check(onnx.load(str(folder / art.file)), str(folder / art.file))
        feeds = {t.name: rng.uniform(-1, 1, _concrete(t.shape)).astype(t.dtype) for t in art.inputs}
        outputs = _run(folder, manifest, name, feeds)
        for spec in art.outputs:
            value = outputs[spec.name]
            if not np.isfinite(value).all():
                raise LeedError(
                    f"{folder / art.file}: output {spec.name!r} has NaN/Inf on random inputs; re-run leed-export"
                )
            if len(value.shape) != len(spec.shape) or any(
                isinstance(d, int) and d != g for d, g in zip(spec.shape, value.shape, strict=False)
            ):
                raise LeedError(
                    f"{folder / art.file}: output {spec.name!r} has shape {list(value.shape)}, manifest says {spec.shape}"
                )
        click.echo(f"{art.file:<44} sha256 OK, onnx.checker OK, onnxruntime OK (batch 2, finite)")
    click.echo(f"leed-export --check: {len(manifest.artifacts)} artifacts of {folder} match {folder}/manifest.json")


def _concrete(shape: list[int | str]) -> tuple[int, ...]:
    """A shape for a smoke run: batch 2, other symbolic dimensions (detector images) 48."""
    return tuple(d if isinstance(d, int) else (2 if i == 0 else 48) for i, d in enumerate(shape))
