"""`leed-app`: its jobs (no Gradio), its page's handler and progress (Gradio in-process), and the
page itself in a real browser (Debian's Chromium driven by Playwright), on the shipped model and
the real clip `samples/real/talk.mp4` cut to 30 frames."""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlsplit

import av
import cv2
import numpy as np
import pytest

from leed_app.app import build_app, edit, page_error
from leed_app.jobs import (
    KEEP_JOBS_S,
    Job,
    default_work_root,
    extract_zip,
    model_choices,
    new_job_folder,
    run_job,
)
from leed_runtime.errors import LeedError
from leed_runtime.run import DEFAULT_MODEL
from leed_runtime.strip import TILE

ROOT = Path(__file__).resolve().parents[2]
TALK, SURPRISED = ROOT / "samples/real/talk.mp4", ROOT / "samples/real/surprised.jpg"
FRAMES = 30
CHROMIUM = Path(os.environ.get("LEED_CHROMIUM", "/usr/bin/chromium"))

pytestmark = pytest.mark.skipif(
    not (DEFAULT_MODEL / "manifest.json").is_file() or not TALK.is_file(), reason="needs the shipped model and samples"
)


def cut_clip(src: Path, dst: Path, frames: int) -> Path:
    """The first `frames` frames of `src` re-encoded (H.264), with its audio copied up to there."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin, ain = inp.streams.video[0], inp.streams.audio[0]
        rate = vin.average_rate
        vout = out.add_stream("libx264", rate=rate)
        vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        aout = out.add_stream_from_template(ain)
        for n, frame in enumerate(inp.decode(vin)):
            if n == frames:
                break
            frame.pts, frame.time_base = n, Fraction(1) / rate
            for packet in vout.encode(frame.reformat(format="yuv420p")):
                out.mux(packet)
        for packet in vout.encode():
            out.mux(packet)
        inp.seek(0)
        for packet in inp.demux(ain):
            if packet.dts is None:
                continue
            if packet.pts * ain.time_base > Fraction(frames) / rate:
                break
            packet.stream = aout
            out.mux(packet)
    return dst


def video_facts(path: Path) -> tuple[int, Fraction, bool]:
    """(decoded frame count, average rate, has an audio stream), read with PyAV."""
    with av.open(str(path)) as c:
        rate, has_audio = c.streams.video[0].average_rate, bool(c.streams.audio)
        return sum(1 for _ in c.decode(video=0)), rate, has_audio


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cut_clip(TALK, tmp_path_factory.mktemp("clip") / "talk.mp4", FRAMES)


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frame of the clip as a PNG (one face)."""
    with av.open(str(TALK)) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="bgr24")
    path = tmp_path_factory.mktemp("photo") / "face.png"
    cv2.imwrite(str(path), frame)
    return path


@pytest.fixture(scope="module")
def no_face(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("noface") / "wall.png"
    cv2.imwrite(str(path), np.dstack([np.tile(np.linspace(0, 255, 256, dtype=np.uint8), (192, 1))] * 3))
    return path


def no_leftovers(work: Path) -> None:
    assert not list(work.rglob(".tmp-*")), list(work.rglob(".tmp-*"))


# -- jobs (no Gradio) --------------------------------------------------------------------------


def test_video_job_keeps_frames_rate_audio_and_previews(clip: Path, tmp_path: Path) -> None:
    work, before = tmp_path / "work", digest(clip)
    outcome = run_job(Job(media=str(clip), refs=[str(SURPRISED)], alpha=1.5), work)
    assert outcome.output == outcome.video and outcome.output.name == "talk.leed.mp4"
    assert outcome.folder.parent == work and outcome.output.parent == outcome.folder  # a job folder of its own
    assert video_facts(outcome.output) == (FRAMES, Fraction(30), True)
    (summary,) = outcome.summaries
    assert summary["frames"] == FRAMES and summary["faces_edited"] >= FRAMES - 2
    assert summary["config"]["alpha"] == 1.5 and summary["config"]["video"] == str(clip)
    assert "**talk.mp4** → `talk.leed.mp4`: 30 frame(s)" in outcome.summary
    strip = cv2.imread(str(outcome.preview))
    assert strip is not None and strip.shape[0] == 2 * TILE + 6  # reference, then input over edited
    assert digest(clip) == before and sorted(p.name for p in clip.parent.iterdir()) == ["talk.mp4"]
    no_leftovers(work)


def test_photo_job_edits_the_face_and_previews_it(photo: Path, tmp_path: Path) -> None:
    outcome = run_job(Job(media=str(photo), refs=[str(SURPRISED)]), tmp_path)
    assert outcome.video is None and outcome.output.name == "face.leed.png"
    src, out = cv2.imread(str(photo)), cv2.imread(str(outcome.output))
    assert out.shape == src.shape
    assert np.abs(out.astype(np.int16) - src).max() > 20  # the face changed
    strip = cv2.imread(str(outcome.preview))
    assert strip.shape[0] == 2 * TILE + 6 and strip.shape[1] > 2 * TILE + 6  # reference column, then the pair
    assert outcome.summaries[0]["faces_edited"] == 1


def test_zipped_folder_edits_every_photo_and_video_and_ignores_the_rest(
    photo: Path, clip: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "holiday.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(photo, "day 1/face.png")
        zf.write(photo, "face.jpg.png")
        zf.write(clip, "day 1/talk.mp4")
        zf.writestr("notes.txt", "not a picture")
        zf.writestr("__MACOSX/day 1/._face.png", b"resource fork")
        zf.writestr(".hidden.png", b"")
    outcome = run_job(
        Job(media=str(archive), refs=[str(SURPRISED), str(SURPRISED)], ref_weights="0.5,0.5", max_faces=1),
        tmp_path / "work",
    )
    assert outcome.output.name == "holiday.leed.zip" and outcome.video is None
    with zipfile.ZipFile(outcome.output) as zf:
        names = sorted(zf.namelist())
        assert names == ["day 1/face.png", "day 1/talk.mp4", "face.jpg.png"]  # as `leed-run DIR --out DIR` names them
        zf.extract("day 1/talk.mp4", tmp_path / "unzipped")
    assert video_facts(tmp_path / "unzipped/day 1/talk.mp4") == (FRAMES, Fraction(30), True)
    assert [s["config"]["ref_weights"] for s in outcome.summaries] == [[0.5, 0.5]] * 3
    assert outcome.summary.count("\n") == 2 and "**day 1/talk.mp4**" in outcome.summary
    assert cv2.imread(str(outcome.preview)).shape[0] == 2 * TILE + 6  # the photos' strip
    no_leftovers(tmp_path / "work")


def test_a_bad_file_in_a_zip_is_reported_and_the_rest_edited(photo: Path, tmp_path: Path) -> None:
    """As `leed-run DIR`: one file that cannot be edited is a failed line; the others are edited."""
    archive = tmp_path / "mixed.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(photo, "good.png")
        zf.writestr("cut.png", b"\x89PNG\r\n\x1a\n")
    outcome = run_job(Job(media=str(archive), refs=[str(SURPRISED)], max_faces=1), tmp_path / "work")
    with zipfile.ZipFile(outcome.output) as zf:
        assert zf.namelist() == ["good.png"]
    assert "**cut.png**: failed: mixed.zip/cut.png: truncated image" in outcome.summary, outcome.summary
    assert "**good.png** →" in outcome.summary and len(outcome.summaries) == 1


def _zip(tmp_path: Path, name: str, members: dict[str, bytes]) -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    return path


BAD_JOBS = {
    # case: (job fields from the fixtures, the one line the page shows)
    "reference without a face": (
        lambda c, n, t: {"media": c, "refs": [n]},
        "wall.png: no face found; use a photo where one face is clearly visible",
    ),
    "0-byte video": (
        lambda c, n, t: {"media": str(t / "empty.mp4"), "refs": [str(SURPRISED)]},
        "empty.mp4: not a readable video",
    ),
    "0-byte reference": (
        lambda c, n, t: {"media": c, "refs": [str(t / "empty.jpg")]},
        "empty.jpg: missing or empty image",
    ),
    "not a video or a photo": (
        lambda c, n, t: {"media": str(t / "notes.txt"), "refs": [str(SURPRISED)]},
        "notes.txt: not a video (.mp4",
    ),
    "no input": (lambda c, n, t: {"media": None, "refs": [str(SURPRISED)]}, "no input: upload a video"),
    "no reference": (lambda c, n, t: {"media": c, "refs": []}, "no reference photo"),
    "alpha beyond the range": (
        lambda c, n, t: {"media": c, "refs": [str(SURPRISED)], "alpha": 2.5},
        "--alpha must be >= 0 and <= 2, got 2.5",
    ),
    "weights not numbers": (
        lambda c, n, t: {"media": c, "refs": [str(SURPRISED)], "ref_weights": "a,b"},
        "--ref-weights a,b: not a comma-separated list of numbers",
    ),
    "weights for another count": (
        lambda c, n, t: {"media": c, "refs": [str(SURPRISED)], "ref_weights": "1,2"},
        "--ref-weights 1,2: give one finite, non-negative number per --ref (1 here)",
    ),
    "model folder without a manifest": (
        lambda c, n, t: {"media": c, "refs": [str(SURPRISED)], "model": str(t / "work")},
        "manifest.json",
    ),
    "0-byte zip": (
        lambda c, n, t: {"media": str(t / "empty.zip"), "refs": [str(SURPRISED)]},
        "not a readable zip file",
    ),
    "zip without pictures": (
        lambda c, n, t: {"media": str(_zip(t, "docs.zip", {"a.txt": b"x"})), "refs": [str(SURPRISED)]},
        "docs.zip: no videos (.mp4",
    ),
    "zip member outside the folder": (
        lambda c, n, t: {"media": str(_zip(t, "evil.zip", {"../../x.png": b"x"})), "refs": [str(SURPRISED)]},
        "evil.zip: ../../x.png points outside the zipped folder",
    ),
    "zip naming one file twice": (
        lambda c, n, t: {
            "media": str(_zip(t, "twice.zip", {"A/x.png": b"x", "a/X.png": b"y"})),
            "refs": [str(SURPRISED)],
        },
        "twice.zip: A/x.png and a/X.png name the same file",
    ),
    "zipped photo truncated": (
        lambda c, n, t: {
            "media": str(_zip(t, "cut.zip", {"in/a.png": b"\x89PNG\r\n\x1a\n"})),
            "refs": [str(SURPRISED)],
        },
        "cut.zip/in/a.png: truncated image",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_JOBS))
def test_bad_input_is_one_line_naming_the_upload(case: str, clip: Path, no_face: Path, tmp_path: Path) -> None:
    for name in ("empty.mp4", "empty.jpg", "empty.zip"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "notes.txt").write_text("hello")
    make, needle = BAD_JOBS[case]
    work = tmp_path / "work"
    with pytest.raises(LeedError) as info:
        run_job(Job(**make(str(clip), str(no_face), tmp_path)), work)
    message = str(info.value)
    assert needle in message and "\n" not in message, message
    assert str(tmp_path) not in message.replace(str(work), "")  # the uploads' names, not their folder
    assert not work.exists() or not list(work.glob("job-*"))  # a failed job leaves no folder


def test_job_folders_are_fresh_private_and_expire(tmp_path: Path) -> None:
    old, keep = tmp_path / "job-old", tmp_path / "mine.mp4"
    old.mkdir()
    keep.write_bytes(b"user file")
    os.utime(old, (time.time() - KEEP_JOBS_S - 60,) * 2)
    a, b = new_job_folder(tmp_path), new_job_folder(tmp_path)
    assert a != b and a.name.startswith("job-") and not any(a.iterdir())
    assert a.stat().st_mode & 0o077 == 0
    assert not old.exists() and keep.read_bytes() == b"user file"
    assert default_work_root().name == f"leed-app-{os.getuid()}"  # one per user
    fresh = new_job_folder(tmp_path / "new-root").parent
    assert fresh.stat().st_mode & 0o077 == 0  # a new work folder is private too


def test_zip_bomb_and_junk_are_refused_before_extracting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _zip(tmp_path, "big.zip", {"a.png": b"0" * 4096, "b.mp4": b"0" * 4096})
    monkeypatch.setattr("leed_app.jobs.ZIP_MAX_BYTES", 4096)
    with pytest.raises(LeedError, match="GiB unpacked, more than"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_model_choices_offer_the_shipped_model_first(tmp_path: Path) -> None:
    other = tmp_path / "mine"
    shutil.copytree(DEFAULT_MODEL, other)
    choices = model_choices(str(other))
    assert choices[0] == (str(other), str(other))
    assert (f"{DEFAULT_MODEL.name} (shipped)", str(DEFAULT_MODEL)) in choices
    assert all((Path(folder) / "manifest.json").is_file() for _, folder in choices)
    assert model_choices(str(tmp_path))[0][1] == str(DEFAULT_MODEL)  # a folder without manifest.json is left out


def test_app_imports_no_torch(python_without_torch) -> None:  # noqa: ANN001 - conftest fixture
    code = """
import leed_app.cli, leed_app.jobs
try:
    import gradio
except ImportError:
    gradio = None
if gradio is not None:
    import tempfile
    from leed_app.app import build_app
    build_app(tempfile.mkdtemp())
assert "torch" not in sys.modules
print("ok")
"""
    proc = python_without_torch(code)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


# -- the page's handler, in-process (needs Gradio) --------------------------------------------


def test_page_errors_are_one_line_without_traceback() -> None:
    gr = pytest.importorskip("gradio")
    err = page_error(LeedError("talk.mp4: not a readable video\n(InvalidDataError); re-encode it"))
    assert (
        isinstance(err, gr.Error)
        and err.message == "error: talk.mp4: not a readable video (InvalidDataError); re-encode it"
    )
    assert err.print_exception is False and err.duration is None  # stays until closed
    bug = page_error(ValueError("boom"))
    assert bug.message == "unexpected error: ValueError: boom (the traceback is in the leed-app log)"


def test_progress_bar_counts_the_videos_real_frames(clip: Path, tmp_path: Path) -> None:
    """The handler's gr.Progress(track_tqdm=True) follows run()'s frame counter. Gradio's queue is
    replaced by a recorder (the one internal touched: LocalContext, as the queue sets it)."""
    gr = pytest.importorskip("gradio")
    from gradio.context import LocalContext

    seen: list[tuple] = []

    class Queue:
        def set_progress(self, event_id: str, iterables: list) -> None:
            seen.extend((it.index, it.length, it.unit) for it in iterables or [])

    class Blocks:
        _queue = Queue()

    progress = gr.Progress(track_tqdm=True)

    def call() -> tuple:
        LocalContext.blocks.set(Blocks())
        LocalContext.event_id.set("test")
        LocalContext.progress.set(progress)
        return edit(tmp_path, str(clip), [str(SURPRISED)], None, "auto", 1.0, 4, "", 0, 4, True, progress)

    preview, video, output, summary = contextvars.copy_context().run(call)
    frames = [(i, n) for i, n, unit in seen if unit == "frame"]
    assert frames and all(n == FRAMES for _, n in frames), seen
    assert max(i for i, _ in frames) == FRAMES
    assert Path(video) == Path(output) and Path(preview).is_file() and "30 frame(s)" in summary


def test_build_app_is_offline() -> None:
    pytest.importorskip("gradio")
    page = build_app(default_work_root())
    assert page.analytics_enabled is False and os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    ids = {c.get("props", {}).get("elem_id") for c in page.get_config_file()["components"]}
    assert {"media", "refs", "model", "backend", "alpha", "max-faces", "run", "preview", "download"} <= ids


def test_leed_app_refuses_a_busy_port_and_a_wrong_model_in_one_line(tmp_path: Path) -> None:
    pytest.importorskip("gradio")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for args, needle in (
            (["--port", str(port)], f"error: --port {port}: 127.0.0.1:{port} is already in use"),
            (["--port", str(port), "--model", str(tmp_path)], f"error: {tmp_path}/manifest.json: missing"),
        ):
            proc = subprocess.run(
                [sys.executable, "-m", "leed_app.cli", "--work-dir", str(tmp_path / "work"), *args],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
            assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
                next(line for line in proc.stderr.splitlines() if line.startswith(needle))
            ], proc.stderr


# -- the page in a real browser -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_served(url: str, proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"leed-app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"leed-app did not answer at {url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def served_app(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """`leed-app --host 127.0.0.1 --port FREE` as a user starts it (the console script when installed)."""
    pytest.importorskip("gradio")
    script = Path(sys.executable).with_name("leed-app")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "leed_app.cli"]
    port, work, log = _free_port(), tmp_path / "work", tmp_path / "leed-app.log"
    env = {k: v for k, v in os.environ.items() if k != "GRADIO_TEMP_DIR"}  # uploads go under --work-dir
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port), "--work-dir", str(work)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_served(url, proc, log)
        yield url, work, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# every "N/M frame" the progress bar shows, recorded as the page changes
RECORD_PROGRESS = r"""
window.__leedProgress = [];
new MutationObserver(() => {
  for (const m of (document.body ? document.body.innerText : "").matchAll(/(\d+)\/(\d+) frame/g))
    window.__leedProgress.push([+m[1], +m[2]]);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("playwright") is None, reason="needs playwright (pip install playwright)")
@pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")
def test_browser_edits_a_video_and_shows_bad_input_in_one_line(
    served_app: tuple[str, Path, Path], clip: Path, no_face: Path, tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    url, work, log = served_app
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    hosts: set[str] = set()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 960}, accept_downloads=True)
            page.add_init_script(RECORD_PROGRESS)
            page.on("request", lambda r: hosts.add(urlsplit(r.url).netloc))
            page.set_default_timeout(120_000)
            page.goto(url)
            page.set_input_files("#media input[type=file]", str(clip))
            page.set_input_files("#refs input[type=file]", str(SURPRISED))
            page.locator("#media").get_by_text("talk").wait_for()
            page.locator("#refs").get_by_text("surprised").wait_for()
            page.click("#run")
            link = page.locator("#download a[download]")
            link.wait_for(timeout=600_000)  # the job: generous, any machine
            assert link.get_attribute("download") == "talk.leed.mp4"
            with page.expect_download() as download:
                link.click()
            result = tmp_path / "downloaded.mp4"
            download.value.save_as(result)
            assert video_facts(result) == (FRAMES, Fraction(30), True)
            assert "talk.mp4 → talk.leed.mp4: 30 frame(s)" in page.inner_text("#summary")
            page.locator("#preview img").wait_for()
            progress = page.evaluate("window.__leedProgress")
            assert all(total == FRAMES for _, total in progress), progress  # the real frame count
            page.locator("#result-video video").wait_for()
            # a first frame for the screenshot (a Chromium without H.264 shows none; not a failure)
            with contextlib.suppress(sync_api.TimeoutError):
                page.wait_for_function("document.querySelector('#result-video video').readyState >= 2", timeout=30_000)
            shot = Path(os.environ.get("LEED_APP_SCREENSHOT") or tmp_path / "app.png")
            page.screenshot(path=str(shot), full_page=True)

            # a reference with no face, then a 0-byte video: the CLI's one line in the page
            for media, ref, line in (
                (None, no_face, "error: wall.png: no face found; use a photo where one face is clearly visible"),
                (empty, SURPRISED, "error: empty.mp4: not a readable video"),
            ):
                if media is not None:
                    page.locator("#media button[aria-label='Clear']").first.click()
                    page.set_input_files("#media input[type=file]", str(media))
                    page.locator("#media").get_by_text(media.stem).wait_for()
                page.locator("#refs button[aria-label='Clear']").first.click()
                page.set_input_files("#refs input[type=file]", str(ref))
                page.locator("#refs").get_by_text(ref.stem).wait_for()
                page.click("#run")
                toast = page.locator("[data-testid=toast-text]").filter(has_text=line.split(":")[1].strip())
                toast.wait_for(timeout=300_000)
                text = toast.inner_text().strip()
                assert text.startswith(line) and "\n" not in text, text
                assert "Traceback" not in page.inner_text("body")
                page.locator("[data-testid=toast-close]").first.click()
        finally:
            browser.close()
    assert hosts == {urlsplit(url).netloc}, hosts  # the page asked nothing of any other host
    server = log.read_text()
    assert "Traceback" not in server, server[-3000:]
    assert re.search(r"wrote .*talk\.leed\.mp4", server)
    no_leftovers(work)
    assert len(list(work.glob("job-*"))) == 1  # the failed jobs left no folder
    assert list((work / "gradio").rglob("talk.mp4"))  # the uploads too stayed in the work folder
