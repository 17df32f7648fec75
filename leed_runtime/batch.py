"""Folders: `leed-run --image DIR --out DIR` and `--video DIR --out DIR`.

Every image (or video) under DIR, sub-folders included, is edited by `run.run` (the one
pipeline, the same checks) into the same relative name under --out. One bad file is reported on
one line and skipped, the rest go on; an output that exists already is kept, not redone, so a
batch stopped half-way continues where it was by running it again. The backend `auto` chose for
the first file is used for the rest (the choice is made once).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

from leed_runtime.atomic import atomic_write_text
from leed_runtime.containers import CONTAINERS
from leed_runtime.errors import LeedError, one_line
from leed_runtime.image import IMAGE_SUFFIXES
from leed_runtime.run import RunConfig, Unbroken, run

VIDEO_SUFFIXES = tuple(CONTAINERS)  # the containers leed reads and writes


def folder_input(cfg: RunConfig) -> tuple[str, Path] | None:
    """("image" | "video", DIR) when --image or --video names a folder, else None."""
    for kind, value in (("image", cfg.image), ("video", cfg.video)):
        if value is not None and Path(value).is_dir():
            return kind, Path(value)
    return None


def media_files(folder: Path, suffixes: tuple[str, ...], skip: Path | None = None) -> list[Path]:
    """Files under `folder` with one of `suffixes` (any case), sorted; hidden files and folders
    and anything under `skip` (an output folder inside the input) are left out."""
    skip = skip.resolve() if skip is not None else None
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if skip is not None and path.resolve().is_relative_to(skip):
            continue
        if path.suffix.lower() in suffixes:
            found.append(path)
    return sorted(found)


def folder_target(rel: Path, out: Path) -> Path:
    """The edited copy of a folder's file `rel` (its path inside the folder): the same relative
    name under `out`, so no two inputs ever share an output (the app's zipped folders too)."""
    return out / rel


def run_folder(cfg: RunConfig) -> dict:
    """Edit every image or video of a folder; returns the batch summary (counts, per file)."""
    found = folder_input(cfg)
    if found is None:
        raise LeedError("run_folder needs --image or --video naming a folder")
    kind, src = found
    report = Unbroken(sys.stdout)
    if cfg.out is None:
        raise LeedError(f"--{kind} {src} is a folder: give --out FOLDER for the edited copies (same names)")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise LeedError(f"--out {out} is a file; a folder of {kind}s is written into a folder: give --out FOLDER")
    if out.resolve() == src.resolve():
        raise LeedError(
            f"--out {out} is the input folder: the edits would replace the originals; choose another folder"
        )
    if cfg.strip is not None:
        raise LeedError("--strip shows frames of one video: drop it for a folder (each file's summary is printed)")
    if cfg.webcam is not None:
        raise LeedError(f"give one input: --{kind} {src} or --webcam")
    suffixes = IMAGE_SUFFIXES if kind == "image" else VIDEO_SUFFIXES
    files = media_files(src, suffixes, skip=out)
    if not files:
        raise LeedError(f"--{kind} {src}: no {kind}s in this folder ({' '.join(suffixes)}); check the folder")
    start, backend, rows = time.perf_counter(), cfg.backend, []

    def one(path: Path, target: Path) -> RunConfig:
        files = {"image": None, "video": None, kind: str(path)}
        return dataclasses.replace(cfg, **files, out=str(target), summary_json=None, backend=backend)

    # what is wrong for every file (a --ref, the model, a flag) stops the batch before it starts
    one(files[0], folder_target(files[0].relative_to(src), out)).validate()
    for n, path in enumerate(files, 1):
        target = folder_target(path.relative_to(src), out)
        print(f"leed-run: [{n}/{len(files)}] {path} -> {target}", file=report)
        if target.exists():
            print(f"leed-run: {target} exists: kept, not redone", file=report)
            rows.append({"input": str(path), "output": str(target), "status": "kept"})
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            summary = run(one(path, target))
        except (LeedError, OSError) as exc:
            print(f"error: {one_line(str(exc))}", file=sys.stderr)
            rows.append({"input": str(path), "output": str(target), "status": "failed", "error": one_line(str(exc))})
            continue
        backend = summary.get("backend", backend)  # auto's choice, made once for the batch
        rows.append({"input": str(path), "output": str(target), "status": "edited", "summary": summary})
    counts = {s: sum(r["status"] == s for r in rows) for s in ("edited", "kept", "failed")}
    batch = {"input": str(src), "output": str(out), "kind": kind, "files": len(files), **counts}
    batch["seconds"] = time.perf_counter() - start
    batch["results"] = rows
    print(
        f"leed-run: {len(files)} {kind}s in {src}: {counts['edited']} edited, {counts['kept']} kept (already in "
        f"{out}), {counts['failed']} failed ({batch['seconds']:.1f} s)",
        file=report,
    )
    if cfg.summary_json:
        atomic_write_text(Path(cfg.summary_json), json.dumps(batch, indent=2) + "\n")
    return batch
