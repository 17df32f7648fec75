"""The `leed-app` page (Gradio): the widgets of `leed-run`, one button, the result.

Every job runs through `leed_app.jobs.run_job`, that is `leed_runtime.run.run`, the one path
of `leed-run` (the same `Editor`). Its progress bar is `run()`'s own frame counter (a tqdm bar
whose total is the video's frame count), which `gr.Progress(track_tqdm=True)` shows in the
page. A `LeedError` becomes `gr.Error` with the CLI's one line; anything else is logged on the
server with its traceback and shown as one line too, never as a traceback in the page.

Offline and local: Gradio's analytics and version check are off, Hugging Face Hub is offline,
no share link is made, the theme's fonts are local; only `--host` decides who can connect.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from leed_app.jobs import (
    ALPHA_RANGE,
    DETECT_EVERY_RANGE,
    IMAGE_SUFFIXES,
    MAX_FACES_RANGE,
    VIDEO_SUFFIXES,
    Job,
    Progress,
    default_work_root,
    model_choices,
    no_progress,
    run_job,
)
from leed_runtime.backends.table import backend_kinds
from leed_runtime.errors import LeedError, one_line
from leed_runtime.run import LIMITS

log = logging.getLogger("leed-app")

OFFLINE_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",  # no analytics, no version check against api.gradio.app
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
}

INTRO = """\
# leed: give every face the expression of a reference photo
Upload a video or a photo (or a folder as a `.zip`) and one or more reference photos, then press
**Edit expressions**. Everything runs on this machine, with the same pipeline as `leed-run`.
"""


def gradio() -> ModuleType:
    """The gradio module, imported with analytics, telemetry and the Hub switched off."""
    os.environ.update(OFFLINE_ENV)
    try:
        import gradio as gr
    except ImportError:
        raise LeedError("leed-app needs gradio: pip install 'leed[app]'") from None
    return gr


def edit(
    work_root: Path,
    media: str | None,
    refs: list[str] | None,
    model: str | None,
    backend: str,
    alpha: float,
    max_faces: float,
    ref_weights: str,
    ref_switch: float | None,
    detect_every: float,
    smooth: bool,
    progress: Progress = no_progress,
) -> tuple[str | None, str | None, str, str]:
    """The button: (preview PNG, video to play or None, file to download, summary Markdown).
    Raises `LeedError` (one line naming the uploaded file) on bad input."""
    job = Job(
        media=media,
        refs=list(refs or []),
        model=model or None,
        backend=backend or "auto",
        alpha=alpha,
        max_faces=_whole(max_faces),
        ref_weights=ref_weights or "",
        ref_switch=float(ref_switch or 0.0),
        detect_every=_whole(detect_every),
        smooth=bool(smooth),
    )
    outcome = run_job(job, work_root, progress)
    return (
        str(outcome.preview) if outcome.preview else None,
        str(outcome.video) if outcome.video else None,
        str(outcome.output),
        outcome.summary,
    )


def _whole(value: float | int) -> float | int:
    """A slider's 4.0 as 4 (leed-run's whole-number options refuse "4.0"); 4.5 stays for
    `RunConfig.validate` to refuse in its words."""
    return int(value) if float(value).is_integer() else value


def page_error(exc: BaseException) -> Exception:
    """What the page shows for an exception: gr.Error with one line (and no traceback)."""
    gr = gradio()
    if isinstance(exc, LeedError):
        return gr.Error(f"error: {one_line(str(exc))}", duration=None, print_exception=False)
    log.error("leed-app: unexpected error", exc_info=exc)
    return gr.Error(
        f"unexpected error: {type(exc).__name__}: {one_line(str(exc))} (the traceback is in the leed-app log)",
        duration=None,
        print_exception=False,
    )


def build_app(work_root: Path | None = None, model: str | None = None) -> Any:
    """The page as a gr.Blocks; `model` (an export folder) is preselected, else the shipped one."""
    gr = gradio()
    root = Path(work_root) if work_root is not None else default_work_root()
    choices = model_choices(model)

    def on_click(
        media: str | None,
        refs: list[str] | None,
        model: str | None,
        backend: str,
        alpha: float,
        max_faces: float,
        ref_weights: str,
        ref_switch: float | None,
        detect_every: float,
        smooth: bool,
        progress: Any = gr.Progress(track_tqdm=True),  # noqa: B008 - how Gradio asks for a progress bar
    ) -> tuple[str | None, Any, str, str]:
        try:
            preview, video, output, summary = edit(
                root, media, refs, model, backend, alpha, max_faces, ref_weights, ref_switch, detect_every, smooth,
                progress,
            )  # fmt: skip
        except Exception as exc:
            raise page_error(exc) from None
        return preview, gr.update(value=video, visible=video is not None), output, summary

    with gr.Blocks(title="leed-app", analytics_enabled=False, delete_cache=(3600, 24 * 3600)) as page:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column():
                media = gr.File(
                    label=f"Video ({' '.join(VIDEO_SUFFIXES)}), photo ({' '.join(IMAGE_SUFFIXES)}) or a .zip of them",
                    file_types=[*VIDEO_SUFFIXES, *IMAGE_SUFFIXES, ".zip"],
                    elem_id="media",
                )
                refs = gr.File(
                    label="Reference photo(s): the expression to take",
                    file_count="multiple",
                    file_types=list(IMAGE_SUFFIXES),
                    elem_id="refs",
                )
                with gr.Row():
                    model_box = gr.Dropdown(
                        choices=choices,
                        value=choices[0][1] if choices else None,
                        allow_custom_value=True,
                        label="Model",
                        info="an export folder (leed-export --out); type a path for another",
                        elem_id="model",
                    )
                    backend = gr.Dropdown(
                        choices=["auto", *backend_kinds()],
                        value="auto",
                        label="Backend",
                        info="auto: the best one that runs here",
                        elem_id="backend",
                    )
                alpha = gr.Slider(
                    *ALPHA_RANGE,
                    value=1.0,
                    step=0.05,
                    label="Alpha (expression intensity)",
                    info=LIMITS["alpha"].text(),
                    elem_id="alpha",
                )
                max_faces = gr.Slider(
                    *MAX_FACES_RANGE, value=4, step=1, label="Max faces per frame", elem_id="max-faces"
                )
                with gr.Accordion("More options", open=False):
                    ref_weights = gr.Textbox(
                        label="Reference weights", placeholder="e.g. 0.7,0.3 (blend of several references)"
                    )
                    ref_switch = gr.Number(
                        value=0, minimum=0, label="Switch references every N seconds (0: blend them)"
                    )
                    detect_every = gr.Slider(
                        *DETECT_EVERY_RANGE, value=4, step=1, label="Full face detection every N frames"
                    )
                    smooth = gr.Checkbox(value=True, label="Smooth landmarks over time")
                run_button = gr.Button("Edit expressions", variant="primary", elem_id="run")
            with gr.Column():
                preview = gr.Image(
                    label="Preview: reference, then input over edited",
                    type="filepath",
                    format="png",
                    interactive=False,
                    buttons=["download", "fullscreen"],  # no "share": nothing leaves the machine
                    elem_id="preview",
                )
                video = gr.Video(
                    label="Result",
                    height=400,
                    interactive=False,
                    visible=False,
                    buttons=["download"],
                    elem_id="result-video",
                )
                download = gr.File(label="Download the result", interactive=False, elem_id="download")
                summary = gr.Markdown(elem_id="summary")
        run_button.click(
            on_click,
            inputs=[media, refs, model_box, backend, alpha, max_faces, ref_weights, ref_switch, detect_every, smooth],
            outputs=[preview, video, download, summary],
            concurrency_limit=1,  # one job at a time: each already uses every core
        )
    return page


def launch(
    page: Any, work_root: Path | None = None, host: str = "127.0.0.1", port: int = 7860, open_browser: bool = False
) -> None:
    """Serve `page` until interrupted: no share link, no API page, no SSR; the files it serves
    are the uploads and `work_root`'s job folders."""
    root = Path(work_root) if work_root is not None else default_work_root()
    try:
        page.queue(default_concurrency_limit=1).launch(
            server_name=host,
            server_port=port,
            share=False,
            inbrowser=open_browser,
            allowed_paths=[str(root)],
            footer_links=["settings"],
            mcp_server=False,
            ssr_mode=False,
            pwa=False,
            quiet=True,
            prevent_thread_lock=True,
        )
    except OSError as exc:
        if "Cannot find empty port" in str(exc):
            raise LeedError(f"--port {port}: {host}:{port} is already in use; choose another with --port") from None
        raise
    print(
        f"leed-app: serving http://{host}:{port}/ (offline, no share link; jobs in {root}); Ctrl-C to stop", flush=True
    )
    page.block_thread()
