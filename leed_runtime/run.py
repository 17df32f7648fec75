"""`run(cfg)`: the one path of `leed-run`, read top to bottom.

references -> Editor -> (video | image | webcam) frame by frame -> output written to a temp
file and renamed only when complete -> summary (frames, faces, per-stage ms, fps).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from leed_runtime.atomic import atomic_write_text
from leed_runtime.containers import container_for
from leed_runtime.errors import LeedError
from leed_runtime.image import check_pixels, read_image, write_image
from leed_runtime.limits import Limit
from leed_runtime.pipeline import YAW_FULL, YAW_NONE, Editor, blend_codes, check_weights
from leed_runtime.strip import contact_strip, pick_frames
from leed_runtime.video import VideoReader, VideoWriter

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "samples" / "models" / "tw-tiny"  # real faces


LIMITS = {  # RunConfig field -> its range (leed_runtime.limits); `leed-run` checks each flag when parsing
    "webcam": Limit({"min": 0}, integer=True, meaning="the camera's index, 0 = the first"),
    "ref_switch": Limit({"min": 0.0}, meaning="seconds per reference; 0 = blend them all the time"),
    "alpha": Limit({"min": 0.0, "max": 2.0}, meaning="1 = the reference's expression, above 1 extrapolates"),
    "max_faces": Limit({"min": 1}, integer=True),
    "detect_every": Limit({"min": 1}, integer=True, meaning="1 = detect on every frame"),
    "max_frames": Limit({"min": 0}, integer=True, meaning="0 = every frame"),
    "strip_frames": Limit({"min": 1, "max": 16}, integer=True),
}


class Unbroken:
    """A text stream whose reader may go away (`leed-run ... | head -1`): from then on what is
    written to it is dropped instead of raising BrokenPipeError, so the run, its output files
    and its exit status never depend on who reads its report."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                self.stream.write(text)
                self.stream.flush()
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        self.reader_gone = True
        # the stream's descriptor now writes to /dev/null, so the interpreter's last flush is quiet too
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)

    def __getattr__(self, name: str) -> object:  # isatty, fileno, encoding: the stream's own
        return getattr(self.stream, name)


def default_out(src: Path, kind: str) -> Path:
    """`leed-run`'s --out when none is given: INPUT.leed.mp4 beside a video, INPUT.leed.SUFFIX
    beside a photo (the app names its single results the same way)."""
    return src.with_name(src.stem + ".leed" + (src.suffix if kind == "image" else ".mp4"))


@dataclass
class RunConfig:
    """Every option of `leed-run`; flags map 1:1 to these fields."""

    video: str | None = None
    image: str | None = None
    webcam: int | None = None
    refs: list[str] = field(default_factory=list)
    ref_weights: list[float] | None = None
    ref_switch: float = 0.0  # > 0: cycle through the references every N seconds (cross-faded)
    model: str | None = None
    out: str | None = None
    alpha: float = 1.0
    backend: str = "auto"
    max_faces: int = 4
    detect_every: int = 4  # full face detection every N video frames; O-net tracks in between
    smooth: bool = True
    preview: bool = False
    cuda_graph: bool = False  # onnxruntime-cuda: capture and replay the face graphs as CUDA graphs
    nhwc: bool = False  # onnxruntime-cuda: prefer NHWC convolution kernels
    bf16: bool = False  # openvino: the face graphs in bf16 (gated by their own parity against FP32)
    max_frames: int = 0  # > 0: stop after N frames (webcam, tests)
    summary_json: str | None = None
    strip: str | None = None  # PNG: references, then input over edited for `strip_frames` frames
    strip_frames: int = 4

    def _refuse_overwriting_inputs(self) -> None:
        """--out and --strip never name an input (video, image, a reference) or each other, and
        never a folder or a device: nothing the user had is replaced (the output is renamed into
        place at the end, which would replace whatever is there)."""
        inputs = {"the input video": self.video, "the input image": self.image}
        inputs.update({f"the reference {r}": r for r in self.refs})
        outputs = {"--out": self.out, "--strip": self.strip}
        for flag, value in outputs.items():
            if value is None:
                continue
            path = Path(value)
            for what, src in inputs.items():
                if src is not None and path.resolve() == Path(src).resolve():
                    raise LeedError(f"{flag} {value} would overwrite {what}; choose another file")
            if path.is_dir():
                raise LeedError(f"{flag} {value} is a folder; give a file name inside it")
            if (path.exists() and not path.is_file()) or (path.is_symlink() and not path.resolve().is_file()):
                raise LeedError(f"{flag} {value} is not a regular file (a device or a link to one); choose a file")
        if self.out is not None and self.strip is not None and Path(self.out).resolve() == Path(self.strip).resolve():
            raise LeedError(f"--strip {self.strip} is also --out; give them different file names")

    def _check_numbers(self) -> None:
        """Every numeric option inside its `LIMITS` range, every --ref-weights usable."""
        for name, limit in LIMITS.items():
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, limit.check("--" + name.replace("_", "-"), value))
        if self.ref_weights is not None:
            check_weights(self.ref_weights, len(self.refs))
            if self.ref_switch > 0:
                raise LeedError("--ref-weights blends the references, --ref-switch cycles through them; give one")
        if self.ref_switch > 0 and self.image is not None:
            raise LeedError("--ref-switch cycles the references over time: it needs --video or --webcam, not --image")

    def validate(self) -> RunConfig:
        sources = [s for s in (self.video, self.image, self.webcam) if s is not None]
        if len(sources) != 1:
            raise LeedError("give exactly one input: --video FILE, --image FILE or --webcam N")
        if not self.refs:
            raise LeedError("--ref is missing: give a photo whose expression every face should take")
        for ref in self.refs:
            if not Path(ref).is_file():
                raise LeedError(f"{ref}: no such reference image (--ref)")
        for src in (self.video, self.image):
            if src is not None and not Path(src).is_file():
                raise LeedError(f"{src}: no such input file")
        self._check_numbers()
        if self.strip is not None and self.video is None:
            raise LeedError("--strip needs --video (it shows frames spread over the video)")
        if self.strip is not None and Path(self.strip).suffix.lower() != ".png":
            raise LeedError(f"--strip {self.strip}: give a .png file name")
        if self.model is None:
            if not (DEFAULT_MODEL / "manifest.json").is_file():
                raise LeedError(
                    "--model is missing and no shipped model was found: export one with `leed-export RUN_DIR --out EXPORT_DIR`"
                )
            self.model = str(DEFAULT_MODEL)
        if self.out is None and self.webcam is None:
            self.out = str(default_out(Path(self.video or self.image), "image" if self.image else "video"))
        self._refuse_overwriting_inputs()
        if self.image is None and self.out is not None:
            container_for(self.out)  # a video's --out names a container we write: refused before the model loads
        return self


def run(cfg: RunConfig) -> dict:
    """Edit the input; returns (and prints) the summary."""
    from tqdm import tqdm

    cfg.validate()
    report = Unbroken(sys.stdout)
    refs = [read_image(r) for r in cfg.refs]
    fps = 30.0
    reader = None
    if cfg.video is not None:
        reader = VideoReader(cfg.video)
        check_pixels(reader.width, reader.height, cfg.video)  # from the stream's header: nothing decoded yet
        fps = float(reader.fps)
        if reader.variable_rate:
            print(
                f"leed-run: {cfg.video} has a variable frame rate; every frame is kept, written at {fps:.3f} fps",
                file=report,
            )
    start = time.perf_counter()
    detect_every = 1 if cfg.image is not None else cfg.detect_every
    with Editor(
        cfg.model,
        backend=cfg.backend,
        alpha=cfg.alpha,
        max_faces=cfg.max_faces,
        fps=fps,
        smooth=cfg.smooth,
        detect_every=detect_every,
        graph_options={
            **{k: True for k, on in (("cuda_graph", cfg.cuda_graph), ("prefer_nhwc", cfg.nhwc)) if on},
            **({"precision": "bf16"} if cfg.bf16 else {}),
        },
    ) as editor:
        print(f"leed-run: backend {editor.kind} ({editor.reason})", file=report)
        codes = [editor.encode_reference(r, name) for r, name in zip(refs, cfg.refs, strict=True)]
        if cfg.ref_switch <= 0:
            editor.dexp = blend_codes(codes, cfg.ref_weights)
        written = []
        if cfg.image is not None:
            out = editor(read_image(cfg.image))
            write_image(cfg.out, out)
            written.append(cfg.out)
        else:
            pairs, wrote_video = _run_stream(cfg, editor, reader, codes, fps, tqdm)
            written += [cfg.out] if wrote_video else []
            if cfg.strip is not None and pairs:
                write_image(cfg.strip, contact_strip(refs, pairs))
                written.append(cfg.strip)
        summary = _summary(cfg, editor, time.perf_counter() - start, written)
    print(_format_summary(summary), file=report)
    if cfg.summary_json:
        atomic_write_text(Path(cfg.summary_json), json.dumps(summary, indent=2) + "\n")
    return summary


def _dexp_at(codes: list[np.ndarray], t: float, every: float) -> np.ndarray:
    """Reference schedule: hold each reference `every` seconds, cross-fade over the last 20%."""
    k = int(t // every)
    phase = (t % every) / every
    a, b = codes[k % len(codes)], codes[(k + 1) % len(codes)]
    w = min(max((phase - 0.8) / 0.2, 0.0), 1.0)
    return ((1 - w) * a + w * b).astype(np.float32)


def _run_stream(cfg: RunConfig, editor, reader, codes: list[np.ndarray], fps: float, tqdm) -> tuple[list, bool]:  # noqa: ANN001
    """Edit every frame; returns (input, edited) copies of the frames `--strip` shows, and
    whether `--out` was written (not when the stream had no frame)."""

    if reader is not None:
        frames, total, size, audio = iter(reader), reader.frames, (reader.width, reader.height), cfg.video
    else:
        frames, total, size, audio = _webcam(cfg.webcam), None, None, None
    writer = None
    shown = min((n for n in (total, cfg.max_frames) if n), default=None)  # frames this run will edit
    keep = pick_frames(shown, cfg.strip_frames) if cfg.strip else set()
    pairs = []
    bar = tqdm(total=total, unit="frame", desc="leed-run", dynamic_ncols=True, file=Unbroken(sys.stderr))
    try:
        t_wait = time.perf_counter()
        for i, frame in enumerate(frames):
            editor.timings.add("decode", (time.perf_counter() - t_wait) * 1e3)  # time waiting for the decoder
            if writer is None and cfg.out is not None:
                size = size or (frame.shape[1], frame.shape[0])
                writer = VideoWriter(cfg.out, reader.fps if reader else fps, size, audio_from=audio)
            dexp = _dexp_at(codes, i / fps, cfg.ref_switch) if cfg.ref_switch > 0 else None
            original = frame.copy() if i in keep else None  # the Editor edits in place
            out = editor(frame, dexp)
            if original is not None:
                pairs.append((original, out.copy()))
            if writer is not None:
                with editor.timings("encode"):
                    writer.write(out)
            if cfg.preview:
                _preview(out)
            bar.update(1)
            if i % 10 == 0:
                bar.set_postfix(faces=editor.faces)
            if cfg.max_frames and i + 1 >= cfg.max_frames:
                break
            t_wait = time.perf_counter()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        bar.close()
        if hasattr(frames, "close"):
            frames.close()  # stop the decoder thread now, not when the generator is collected at exit
    if writer is not None:
        writer.close()
    return pairs, writer is not None


def _webcam(index: int):  # noqa: ANN202 - iterator of RGB frames
    import cv2

    cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        raise LeedError(f"--webcam {index}: cannot open camera {index}; list cameras with `ls /dev/video*`")
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def _preview(frame: np.ndarray) -> None:
    import cv2

    try:
        cv2.imshow("leed-run (q to stop)", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        if cv2.waitKey(1) & 0xFF == ord("q"):
            raise KeyboardInterrupt
    except cv2.error:
        raise LeedError(
            "--preview needs a display and an OpenCV with GUI support (opencv-python, not -headless)"
        ) from None


def _summary(cfg: RunConfig, editor, seconds: float, written: list[str] | None = None) -> dict:  # noqa: ANN001
    """The run's numbers; `written`: the files it wrote (--out, --strip), as the report lists them."""
    return {
        "input": cfg.video or cfg.image or f"webcam {cfg.webcam}",
        "output": cfg.out,
        "written": list(written or []),
        "backend": editor.kind,
        "frames": editor.frames,
        "faces_edited": editor.faces,
        "frames_without_face": editor.frames_without_face,
        "faces_faded": editor.faces_faded,
        "faces_passed_through": editor.faces_passed,
        "faces_turned_faded": editor.faces_turned_faded,
        "faces_turned_passed_through": editor.faces_turned_passed,
        "seconds": seconds,
        "fps": editor.frames / seconds if seconds > 0 else 0.0,
        "ms_per_stage": editor.timings.summary(),
        "config": asdict(cfg),
    }


def _format_summary(s: dict) -> str:
    lines = [
        f"leed-run: {s['frames']} frames, {s['faces_edited']} faces edited, {s['frames_without_face']} frames without a face, "
        f"{s['seconds']:.1f} s ({s['fps']:.1f} fps end to end) on {s['backend']}",
        f"  {'stage':<8}{'mean ms':>9}{'p50':>8}{'p99':>8}",
    ]
    if s.get("faces_faded") or s.get("faces_passed_through"):
        lines.insert(
            1,
            f"  outside the model's domain (its fit check): {s['faces_passed_through']} face(s) passed through "
            f"unedited, {s['faces_faded']} edited less; the model was not trained on faces like these "
            "(profile, cartoon, tiny or blurred)",
        )
    if s.get("faces_turned_faded") or s.get("faces_turned_passed_through"):
        lines.insert(
            1,
            f"  turned away from the camera (yaw over {YAW_FULL:g} degrees, from the landmarks): "
            f"{s['faces_turned_passed_through']} face(s) passed through unedited, {s['faces_turned_faded']} edited "
            f"less; the model was trained on frontal faces (from {YAW_NONE:g} degrees: not edited at all)",
        )
    for stage, v in s["ms_per_stage"].items():
        lines.append(f"  {stage:<8}{v['mean']:>9.2f}{v['p50']:>8.2f}{v['p99']:>8.2f}")
    lines += [f"  wrote {path}" for path in s.get("written", [])]
    return "\n".join(lines)
