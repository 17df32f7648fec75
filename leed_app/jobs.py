"""One job of `leed-app`, without Gradio: an upload (a video, a photo, or a .zip of a folder of
them) and its reference photos go through `leed_runtime.run.run`, the function `leed-run`
calls: the same `Editor`, the same checks, the same atomic outputs and one-line `LeedError`s.

    job = Job(media="talk.mp4", refs=["smile.jpg"], alpha=1.5)
    outcome = run_job(job, work_root, progress)  # outcome.output: the file to download

Nothing is written next to the uploads: each job gets a fresh folder `work_root/job-XXXXXXXX/`
(mode 0700), so no file the user had can be replaced; a failed job's folder is removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from leed_runtime.atomic import atomic_write
from leed_runtime.batch import IMAGE_SUFFIXES, VIDEO_SUFFIXES, folder_target
from leed_runtime.errors import LeedError, one_line
from leed_runtime.image import read_image, write_image
from leed_runtime.run import DEFAULT_MODEL, LIMITS, RunConfig, default_out, run
from leed_runtime.strip import contact_strip

# the page's sliders: `leed-run`'s own ranges (run.LIMITS, checked again by RunConfig.validate),
# capped where leed-run has no upper bound
ALPHA_RANGE = (LIMITS["alpha"].lo, LIMITS["alpha"].hi)  # 1: the reference's expression; above 1 extrapolates
MAX_FACES_RANGE = (LIMITS["max_faces"].lo, 16)
DETECT_EVERY_RANGE = (LIMITS["detect_every"].lo, 30)
ZIP_MAX_FILES = 1000
ZIP_MAX_BYTES = 16 * 2**30  # uncompressed; a larger (or bomb) zip is refused before extracting
KEEP_JOBS_S = 24 * 3600  # job folders older than this are removed when a new job starts
PREVIEW_PAIRS = 4  # photos of a zip shown in the preview strip

Progress = Callable[..., Any]  # as gr.Progress: progress(fraction | (done, total), desc=..., unit=...)


def no_progress(*args: Any, **kwargs: Any) -> None:
    """The progress callback of a job run without a page."""


@dataclass
class Job:
    """What the page asks for; fields map to `leed-run` flags."""

    media: str | None  # the upload: a video, a photo or a .zip of them
    refs: list[str] = field(default_factory=list)
    model: str | None = None  # an export folder; None or "": the shipped model
    backend: str = "auto"
    alpha: float = 1.0
    max_faces: int = 4
    ref_weights: str = ""  # "0.7,0.3": blend the references (--ref-weights)
    ref_switch: float = 0.0  # > 0: cycle the references every N seconds (--ref-switch)
    detect_every: int = 4
    smooth: bool = True

    def check(self) -> list[float] | None:
        """What `RunConfig.validate` cannot see: an upload and a reference are there, the weights
        are numbers. Returns the parsed weights; every range is left to `RunConfig.validate`."""
        if not self.media:
            raise LeedError("no input: upload a video, a photo or a .zip of them")
        if not self.refs:
            raise LeedError("no reference photo: upload a photo whose expression every face should take")
        text = (self.ref_weights or "").strip()
        if not text:
            return None
        try:  # the words of `leed-run --ref-weights`
            return [float(w) for w in text.split(",")]
        except ValueError:
            raise LeedError(
                f"--ref-weights {text}: not a comma-separated list of numbers; give one per --ref, e.g. 0.7,0.3"
            ) from None


@dataclass
class Outcome:
    """A finished job: everything lies in `folder`."""

    folder: Path
    output: Path  # the file to download: the edited video or photo, or a .zip of them
    video: Path | None  # the edited video, for playing in the page (a single video input)
    preview: Path | None  # PNG: reference(s), then input over edited
    summary: str  # Markdown, one line per file
    summaries: list[dict] = field(default_factory=list)  # `run()`'s summary per file


def default_work_root() -> Path:
    """`TMP/leed-app-UID`: one per user, so nobody else's uploads or results share it."""
    user = os.getuid() if hasattr(os, "getuid") else os.getlogin()
    return Path(tempfile.gettempdir()) / f"leed-app-{user}"


def media_kind(path: Path) -> str:
    """The kind of an upload, "video", "image" or "zip", from its file name (as `leed-run` is told by --video / --image)."""
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix == ".zip":
        return "zip"
    raise LeedError(
        f"{path}: not a video ({' '.join(VIDEO_SUFFIXES)}), a photo ({' '.join(IMAGE_SUFFIXES)}) or a .zip of them"
    )


def model_choices(extra: str | None = None) -> list[tuple[str, str]]:
    """(label, folder) of the export folders offered in the page: `extra`, the shipped model and
    the other models next to it, then `./exports/*`; only folders holding a manifest.json."""
    found: list[Path] = []
    if extra:
        found.append(Path(extra))
    found.append(DEFAULT_MODEL)
    for parent in (DEFAULT_MODEL.parent, Path.cwd() / "exports"):
        if parent.is_dir():
            found.extend(sorted(p for p in parent.iterdir() if p.is_dir()))
    choices, seen = [], set()
    for folder in found:
        key = folder.resolve()
        if key in seen or not (folder / "manifest.json").is_file():
            continue
        seen.add(key)
        label = f"{folder.name} (shipped)" if key == DEFAULT_MODEL.resolve() else str(folder)
        choices.append((label, str(folder)))
    return choices


def new_job_folder(work_root: Path) -> Path:
    """A fresh, private `work_root/job-XXXXXXXX/`; job folders older than KEEP_JOBS_S go first.
    A new `work_root` is made private (0700): Gradio's uploads live in it too."""
    work_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    cutoff = time.time() - KEEP_JOBS_S
    for old in work_root.glob("job-*"):
        if old.is_dir() and not old.is_symlink() and old.stat().st_mtime < cutoff:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix="job-", dir=work_root))


def extract_zip(archive: Path, dest: Path) -> list[tuple[Path, str]]:
    """The videos and photos of a zipped folder, extracted under `dest`, sorted by name:
    (extracted file, its name inside the zip). Other files, folders and hidden files (`.x`,
    `__MACOSX/`) are ignored; a member pointing outside the folder, a zip over
    ZIP_MAX_FILES / ZIP_MAX_BYTES, or one that cannot be read is refused in one line."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise LeedError(f"{archive}: not a readable zip file ({exc}); zip the folder again") from None
    with zf:
        members, seen = [], {}
        for member in zf.infolist():
            name = PurePosixPath(member.filename.replace("\\", "/"))
            if member.is_dir() or name.suffix.lower() not in VIDEO_SUFFIXES + IMAGE_SUFFIXES:
                continue
            if name.is_absolute() or ".." in name.parts:
                raise LeedError(
                    f"{archive}: {member.filename} points outside the zipped folder; zip the folder again without it"
                )
            if any(part.startswith(".") or part == "__MACOSX" for part in name.parts):
                continue
            other = seen.setdefault(str(name).casefold(), member.filename)
            if other != member.filename:  # one file on a case-insensitive disk, or `a\b` beside `a/b`
                raise LeedError(
                    f"{archive}: {other} and {member.filename} name the same file; rename one and zip the folder again"
                )
            members.append((str(name), member))
        if not members:
            raise LeedError(
                f"{archive}: no videos ({' '.join(VIDEO_SUFFIXES)}) or photos ({' '.join(IMAGE_SUFFIXES)}) inside"
            )
        if len(members) > ZIP_MAX_FILES:
            raise LeedError(f"{archive}: {len(members)} videos and photos, more than {ZIP_MAX_FILES}; split the folder")
        size = sum(m.file_size for _, m in members)
        if size > ZIP_MAX_BYTES:
            raise LeedError(
                f"{archive}: {size / 2**30:.1f} GiB unpacked, more than {ZIP_MAX_BYTES / 2**30:.0f} GiB; split the folder"
            )
        out = []
        for name, member in sorted(members, key=lambda nm: nm[0]):
            target = dest / name
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError, zlib.error) as exc:
                raise LeedError(f"{archive}: cannot extract {name} ({exc}); zip the folder again") from None
            out.append((target, name))
        return out


def run_job(job: Job, work_root: Path, progress: Progress = no_progress) -> Outcome:
    """Edit `job.media` into a fresh job folder under `work_root`. A `LeedError` names the files
    as the user uploaded them (their base names, `archive.zip/inner/name.jpg` for a zip's)."""
    weights = job.check()
    media = Path(job.media)
    names = {str(media): media.name, **{str(r): Path(r).name for r in job.refs}}
    folder = new_job_folder(work_root)
    try:
        if media_kind(media) == "zip":
            return _run_zip(job, media, folder, weights, names, progress)
        return _run_single(job, media, folder, weights, progress)
    except BaseException as exc:
        shutil.rmtree(folder, ignore_errors=True)  # nothing half-made stays behind
        if isinstance(exc, LeedError):
            raise LeedError(_rename(str(exc), names)) from None
        raise


def _rename(message: str, names: dict[str, str]) -> str:
    for path in sorted(names, key=len, reverse=True):  # longest first: a zip's members before the zip
        message = message.replace(path, names[path])
    return message


def _run_one(job: Job, src: Path, kind: str, out: Path, strip: Path | None, weights: list[float] | None) -> dict:
    """`leed-run` on one file: `run(RunConfig)`, exactly as its command line calls it."""
    cfg = RunConfig(
        video=str(src) if kind == "video" else None,
        image=str(src) if kind == "image" else None,
        refs=list(job.refs),
        ref_weights=weights,
        ref_switch=job.ref_switch or 0.0,
        model=job.model or None,
        out=str(out),
        alpha=job.alpha,
        backend=job.backend,
        max_faces=job.max_faces,
        detect_every=job.detect_every,
        smooth=bool(job.smooth),
        strip=str(strip) if strip is not None else None,
    )
    return run(cfg)


def _run_single(job: Job, media: Path, folder: Path, weights: list[float] | None, progress: Progress) -> Outcome:
    kind = media_kind(media)
    out, strip = folder / default_out(media, kind).name, folder / "strip.png"
    progress(0.0, desc="loading the model and the reference")
    summary = _run_one(job, media, kind, out, strip if kind == "video" else None, weights)
    if kind == "image":
        write_image(strip, contact_strip([read_image(r) for r in job.refs], [(read_image(media), read_image(out))]))
    return Outcome(
        folder=folder,
        output=out,
        video=out if kind == "video" else None,
        preview=strip if strip.is_file() else None,
        summary=describe(media.name, out.name, summary),
        summaries=[summary],
    )


def _run_zip(
    job: Job, archive: Path, folder: Path, weights: list[float] | None, names: dict[str, str], progress: Progress
) -> Outcome:
    progress(0.0, desc=f"unpacking {archive.name}")
    items = extract_zip(archive, folder / "in")
    edited, strip = folder / "out", folder / "strip.png"
    pairs, summaries, lines, failed = [], [], [], []
    for i, (src, name) in enumerate(items):
        names[str(src)] = f"{archive.name}/{name}"
        progress((i, len(items)), desc=f"{name} ({i + 1} of {len(items)})", unit="file")
        kind = media_kind(src)
        out = folder_target(Path(name), edited)  # the same name, as `leed-run DIR --out DIR` writes
        first_video = kind == "video" and not strip.exists()
        try:  # one bad file is reported and skipped, as `leed-run DIR` does
            out.parent.mkdir(parents=True, exist_ok=True)
            summary = _run_one(job, src, kind, out, strip if first_video else None, weights)
        except LeedError as exc:
            why = _rename(one_line(str(exc)), names)
            failed.append(why)
            lines.append(f"**{name}**: failed: {why}")
            continue
        if kind == "image" and len(pairs) < PREVIEW_PAIRS:
            pairs.append((read_image(src), read_image(out)))
        summaries.append(summary)
        lines.append(describe(name, str(out.relative_to(edited)), summary))
    if len(failed) == len(items):
        raise LeedError(f"{archive}: no file could be edited ({failed[0]}" + (", ..." if len(failed) > 1 else "") + ")")
    progress((len(items), len(items)), desc="packing the results", unit="file")
    if pairs:  # the photos' strip; a folder of videos shows its first video's
        write_image(strip, contact_strip([read_image(r) for r in job.refs], pairs))
    result = folder / f"{archive.stem}.leed.zip"
    atomic_write(result, lambda fh: _zip_folder(edited, fh))
    return Outcome(
        folder=folder,
        output=result,
        video=None,
        preview=strip if strip.is_file() else None,
        summary="\n".join(f"- {line}" for line in lines),
        summaries=summaries,
    )


def _zip_folder(folder: Path, fh: BinaryIO) -> None:
    """Every file under `folder`, stored (the videos and photos are compressed already)."""
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            zf.write(path, path.relative_to(folder).as_posix())


def describe(name: str, out_name: str, s: dict) -> str:
    """One Markdown line from `run()`'s summary."""
    line = (
        f"**{name}** → `{out_name}`: {s.get('frames', 0)} frame(s), {s.get('faces_edited', 0)} face(s) edited, "
        f"{s.get('frames_without_face', 0)} frame(s) without a face; {s.get('seconds', 0.0):.1f} s "
        f"({s.get('fps', 0.0):.1f} fps) on {s.get('backend', '?')}"
    )
    passed, faded = s.get("faces_passed_through", 0), s.get("faces_faded", 0)
    if passed or faded:
        line += (
            f"; outside the model's domain (its fit check): {passed} face(s) passed through unedited, "
            f"{faded} edited less"
        )
    return line
