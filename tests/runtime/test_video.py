"""Video I/O: exact rates, every frame, audio carried over, nothing half-written."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from leed_runtime.errors import LeedError
from leed_runtime.video import VideoReader, VideoWriter, exact_rate


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from leed_train.data.synth import render_video

    out = tmp_path_factory.mktemp("video") / "clip.mp4"
    render_video(out, identity=2, seconds=1.0, fps=29.97, size=(320, 240), seed=0)
    return out


def test_exact_rate() -> None:
    assert exact_rate(29.97) == Fraction(30000, 1001)
    assert exact_rate(25.0) == 25 and exact_rate(Fraction(24000, 1001)) == Fraction(24000, 1001)


def test_reader_keeps_the_exact_rate_and_every_frame(clip: Path) -> None:
    r = VideoReader(clip)
    assert r.fps == Fraction(30000, 1001) and (r.width, r.height) == (320, 240) and r.has_audio
    frames = list(r)
    assert len(frames) == r.frames == 30
    assert frames[0].shape == (240, 320, 3) and frames[0].dtype == np.uint8


def test_writer_round_trip_with_audio(clip: Path, tmp_path: Path) -> None:
    r = VideoReader(clip)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, r.fps, (r.width, r.height), audio_from=clip) as w:
        for f in r:
            w.write(255 - f)
    back = VideoReader(out)
    assert back.fps == r.fps and back.frames == 30 and back.has_audio
    first = next(iter(back))
    assert abs(first.astype(int).mean() - (255 - next(iter(r)).astype(int)).mean()) < 3
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_aborted_writer_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError), VideoWriter(out, 25, (64, 48)) as w:
        w.write(np.zeros((48, 64, 3), np.uint8))
        raise RuntimeError("killed")
    assert not list(tmp_path.iterdir())


def test_odd_sizes_are_written_at_their_exact_size(tmp_path: Path) -> None:
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, 30, (65, 49)) as w:
        for _ in range(3):
            w.write(np.full((49, 65, 3), 128, np.uint8))
    assert VideoReader(out).frames == 3


@pytest.mark.parametrize("content", [b"", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100])
def test_unreadable_videos_are_one_line_errors(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(LeedError, match="bad.mp4"):
        VideoReader(bad)


def test_missing_video(tmp_path: Path) -> None:
    with pytest.raises(LeedError, match="no such video"):
        VideoReader(tmp_path / "nope.mp4")


def test_round_trip_has_no_colour_bias(tmp_path: Path) -> None:
    """FFmpeg's default yuv420p->rgb24 path darkens every pixel by ~1 level; the reader's own
    conversion must not (mean signed error well under one level on a smooth image)."""
    yy, xx = np.mgrid[0:240, 0:320].astype(np.float32)
    frame = np.dstack([64 + 0.5 * xx, 40 + 0.7 * yy, 200 - 0.3 * (xx + yy) / 2]).clip(0, 255).astype(np.uint8)
    out = tmp_path / "smooth.mp4"
    with VideoWriter(out, 25, (320, 240), crf=1) as w:
        for _ in range(3):
            w.write(frame)
    back = next(iter(VideoReader(out)))
    bias = (back.astype(np.float64) - frame).reshape(-1, 3).mean(0)
    assert np.abs(bias).max() < 0.5, bias
    assert np.abs(back.astype(int) - frame.astype(int)).mean() < 1.5
