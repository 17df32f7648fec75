"""`leed-app`: serve the browser page on this machine (click; no torch)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from leed_app.app import build_app, launch
from leed_app.jobs import default_work_root
from leed_runtime.errors import OneLineCommand, handle_errors
from leed_runtime.manifest import read_manifest

APP_EXAMPLE = """
\b
Examples:
  leed-app                                   # http://127.0.0.1:7860, the shipped model
  leed-app --host 127.0.0.1 --port 7861 --model exports/small
  leed-app --host 0.0.0.0                    # reachable from other machines on the network
"""


@click.command(
    cls=OneLineCommand,
    epilog=APP_EXAMPLE,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to serve on (127.0.0.1: this machine only; 0.0.0.0: every network interface).",
)
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True, help="Port to serve on.")
@click.option("--model", default=None, help="Export folder preselected in the page [default: the shipped model].")
@click.option(
    "--work-dir",
    default=None,
    help="Folder for the uploads and the results (one private job-* folder per job, removed after a day) "
    "[default: TMP/leed-app-UID, private].",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
@handle_errors
def app_main(host: str, port: int, model: str | None, work_dir: str | None, open_browser: bool) -> None:
    """Edit the expressions of faces in videos and photos from a page in the browser (offline)."""
    if model:
        read_manifest(model)  # a wrong --model is refused now, in leed-run's words, not at the first job
    root = Path(work_dir) if work_dir else default_work_root()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)  # private before Gradio puts uploads in it
    os.environ.setdefault("GRADIO_TEMP_DIR", str(root / "gradio"))  # uploads too stay in the work folder
    launch(build_app(root, model), root, host=host, port=port, open_browser=open_browser)


if __name__ == "__main__":
    app_main()
