"""leed-run's numbers: every numeric flag is checked against its one stated range when it is
parsed (NaN and inf included), and pictures larger than 8K are refused from their headers,
before anything is decoded. A refusal is one `error:` line naming the flag or file, exit 2,
nothing written."""

from __future__ import annotations

import math
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from leed_runtime import image as image_module
from leed_runtime.cli import run_main
from leed_runtime.errors import LeedError
from leed_runtime.image import decode_image, encoded_size
from leed_runtime.run import LIMITS, RunConfig, _format_summary, _summary

ROOT = Path(__file__).resolve().parents[2]
VIDEO, REF = ROOT / "samples" / "real" / "talk.mp4", ROOT / "samples" / "real" / "surprised.jpg"


def invoke(*args: str) -> tuple[int, str, str]:
    """`leed-run ARGS` in-process: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(run_main, list(args), prog_name="leed-run")
    return result.exit_code, result.stdout, result.stderr


def _as_number(text: str) -> str:
    """How a message prints a number given as `text` (1e9 -> 1e+09)."""
    try:
        return f"{float(text):g}"
    except ValueError:
        return text


def assert_refused_by_flag(code: int, stderr: str, flag: str) -> str:
    assert code == 2, (code, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    assert flag in lines[0], lines[0]
    return lines[0]


# -- flags -------------------------------------------------------------------------------------

BAD_FLAGS = [
    ("--max-frames", "-1"),
    ("--max-frames", "abc"),
    ("--strip-frames", "-1"),
    ("--strip-frames", "0"),
    ("--strip-frames", "1000"),
    ("--alpha", "1e9"),
    ("--alpha", "nan"),
    ("--alpha", "inf"),
    ("--alpha", "-0.5"),
    ("--ref-switch", "nan"),
    ("--ref-switch", "-1"),
    ("--ref-switch", "inf"),
    ("--ref-weights", "nan"),
    ("--ref-weights", "-1"),
    ("--ref-weights", "0"),
    ("--ref-weights", "inf"),
    ("--ref-weights", "1,x"),
    ("--ref-weights", "0.5,0.5"),  # two weights, one --ref
    ("--max-faces", "0"),
    ("--detect-every", "0"),
    ("--detect-every", "2.5"),
]


@pytest.mark.parametrize(("flag", "value"), BAD_FLAGS)
def test_a_numeric_flag_out_of_its_range_is_refused_by_name(flag: str, value: str, tmp_path: Path) -> None:
    out, strip = tmp_path / "out.mp4", tmp_path / "strip.png"
    extra = [] if flag == "--max-frames" else ["--max-frames", "1"]  # bounded, were it accepted
    code, _, err = invoke(
        "--video", str(VIDEO), "--ref", str(REF), "--out", str(out), "--strip", str(strip), flag, value, *extra
    )
    line = assert_refused_by_flag(code, err, flag)
    shown = value in line or (value.replace(".", "").isalnum() and _as_number(value) in line)
    assert shown and ("must be" in line or "give" in line), line  # the value, and what it must be
    assert not out.exists() and not strip.exists() and not list(tmp_path.iterdir())


def test_webcam_index_is_checked_before_any_camera_is_opened(tmp_path: Path) -> None:
    code, _, err = invoke("--webcam", "-1", "--ref", str(REF))
    assert "the camera's index" in assert_refused_by_flag(code, err, "--webcam")


def test_unknown_options_and_missing_values_are_one_line_too() -> None:
    code, _, err = invoke("--video", str(VIDEO), "--ref", str(REF), "--alpah", "2")
    assert "see leed-run --help" in assert_refused_by_flag(code, err, "--alpah")
    code, _, err = invoke("--video", str(VIDEO), "--ref", str(REF), "--alpha")
    assert_refused_by_flag(code, err, "--alpha")


def test_ref_switch_needs_a_stream_and_excludes_ref_weights(tmp_path: Path) -> None:
    out = tmp_path / "o.jpg"
    code, _, err = invoke("--image", str(REF), "--ref", str(REF), "--ref-switch", "2", "--out", str(out))
    assert "needs --video or --webcam" in assert_refused_by_flag(code, err, "--ref-switch")
    code, _, err = invoke(
        "--video", str(VIDEO), "--ref", str(REF), "--ref", str(REF), "--ref-switch", "2", "--ref-weights", "1,1"
    )
    assert_refused_by_flag(code, err, "--ref-weights")
    assert not out.exists()


@pytest.mark.parametrize("field", sorted(LIMITS))
def test_each_range_is_stated_once_and_shown_in_help(field: str) -> None:
    limit, flag = LIMITS[field], "--" + field.replace("_", "-")
    code, out, _ = invoke("--help")
    assert code == 0 and " ".join(limit.text().split()) in " ".join(out.split())
    assert limit.check(flag, str(limit.lo)) == limit.lo  # both ends are inside
    if limit.hi is not None:
        assert limit.check(flag, limit.hi) == limit.hi
        with pytest.raises(LeedError, match=flag):
            limit.check(flag, limit.hi + 1)
    with pytest.raises(LeedError, match=flag):
        limit.check(flag, limit.lo - 1)


@pytest.mark.parametrize(
    ("field", "value"), [("alpha", math.nan), ("ref_switch", math.inf), ("max_frames", -1), ("strip_frames", 0)]
)
def test_the_python_api_checks_the_same_ranges(field: str, value: float) -> None:
    cfg = RunConfig(video=str(VIDEO), refs=[str(REF)], **{field: value})
    with pytest.raises(LeedError, match="--" + field.replace("_", "-")):
        cfg.validate()


def test_the_summary_says_wrote_only_for_files_written() -> None:
    editor = types.SimpleNamespace(
        kind="onnxruntime-cpu", frames=0, faces=0, frames_without_face=0, faces_faded=0, faces_passed=0,
        faces_turned_faded=0, faces_turned_passed=0, timings=types.SimpleNamespace(summary=dict),
    )  # fmt: skip
    cfg = RunConfig(video="in.mp4", refs=["r.jpg"], out="out.mp4", strip="strip.png")
    assert "wrote" not in _format_summary(_summary(cfg, editor, 1.0, written=[]))
    text = _format_summary(_summary(cfg, editor, 1.0, written=["out.mp4"]))
    assert "wrote out.mp4" in text and "strip.png" not in text


# -- sizes -------------------------------------------------------------------------------------


def _encoded(ext: str, params: list[int] | None = None, size: tuple[int, int] = (53, 37)) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    ok, data = cv2.imencode(ext, pixels, params or [])
    assert ok
    return data.tobytes()


@pytest.mark.parametrize(
    ("ext", "params"),
    [
        (".png", None),
        (".jpg", None),
        (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]),  # lossy (VP8)
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),  # lossless (VP8L)
        (".bmp", None),
    ],
)
def test_image_size_is_read_from_the_header(ext: str, params: list[int] | None) -> None:
    assert encoded_size(_encoded(ext, params)) == (53, 37)


def _claiming(data: bytes, width: int, height: int) -> bytes:
    """A real PNG or baseline JPEG whose header now claims `width` x `height`."""
    out = bytearray(data)
    if data.startswith(b"\x89PNG"):
        out[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    else:
        sof = data.index(b"\xff\xc0")
        out[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(out)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_a_huge_image_header_is_refused_before_decoding(ext: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 20000x20000 header used to cost 2.3 GB and 16 s of decoding before the 8K refusal."""
    data = _claiming(_encoded(ext), 20000, 20000)
    assert encoded_size(data) == (20000, 20000)

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded")

    monkeypatch.setattr(image_module.cv2, "imdecode", no_decoding)
    with pytest.raises(LeedError, match=r"huge\S*: 20000x20000 is larger than 8K"):
        decode_image(data, f"huge{ext}")


def test_a_huge_image_file_is_refused_by_leed_run(tmp_path: Path) -> None:
    path, out = tmp_path / "huge.png", tmp_path / "out.png"
    path.write_bytes(_claiming(_encoded(".png"), 20000, 20000))
    code, _, err = invoke("--image", str(path), "--ref", str(REF), "--out", str(out))
    assert "20000x20000 is larger than 8K" in assert_refused_by_flag(code, err, str(path))
    assert not out.exists()


def test_a_video_larger_than_8k_is_refused_from_its_stream_header(tmp_path: Path, leed_run) -> None:  # noqa: ANN001
    """One 7696x4336 frame: leed-run used to decode and edit it (1.5 GB, 8.6 s for that frame)."""
    import av

    video, out = tmp_path / "big.mp4", tmp_path / "out.mp4"
    with av.open(str(video), mode="w") as c:
        stream = c.add_stream("libx264", rate=1, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 7696, 4336, "yuv420p"
        frame = av.VideoFrame(7696, 4336, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        for packet in [*stream.encode(frame), *stream.encode()]:
            c.mux(packet)
    proc = leed_run("--video", str(video), "--ref", str(REF), "--out", str(out))
    assert "7696x4336 is larger than 8K" in assert_refused_by_flag(proc.returncode, proc.stderr, str(video))
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))


def test_cuda_graph_and_nhwc_reach_the_face_graphs_and_are_refused_where_they_cannot_work(tmp_path: Path) -> None:
    """`--cuda-graph` / `--nhwc` go to the face graphs' backend; on a backend without them the
    run stops in one line naming the backend that takes them, before any frame or file."""
    out = tmp_path / "out.mp4"
    for flag, option in (("--cuda-graph", "cuda_graph"), ("--nhwc", "prefer_nhwc")):
        code, _, stderr = invoke(
            "--video", str(VIDEO), "--ref", str(REF), "--backend", "onnxruntime-cpu", flag, "--out", str(out)
        )
        line = assert_refused_by_flag(code, stderr, option)
        assert "use --backend onnxruntime-cuda" in line
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))
