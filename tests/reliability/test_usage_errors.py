"""A refused command line is one `error:` line naming the flag and `--help`, exit 2, in every
command (an unknown option, a word where a number goes, a missing value, an unknown
subcommand), never click's multi-line usage block."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from leed_app.cli import app_main
from leed_export.bench.cli import bench_main
from leed_export.cli import main as export_main
from leed_export.evaluate.cli import eval_main
from leed_runtime.cli import doctor_main, run_main
from leed_train.cli import train_main
from leed_train.synth_cli import synth_main

CASES = [
    (train_main, ["data", "--log-every", "abc"], "--log-every", "leed-train --help"),
    (train_main, ["--bogus"], "--bogus", "leed-train --help"),
    (synth_main, ["faces", "--seed", "abc", "out"], "--seed", "leed-synth faces --help"),
    (synth_main, ["nope"], "nope", "leed-synth --help"),
    (bench_main, ["infer", "--batch"], "--batch", "leed-bench infer --help"),
    (export_main, ["--nope"], "--nope", "leed-export --help"),
    (eval_main, ["a", "b", "--alpha", "x"], "--alpha", "leed-eval --help"),
    (run_main, ["--alpah", "1"], "--alpah", "leed-run --help"),
    (doctor_main, ["--x"], "--x", "leed-doctor --help"),
    (app_main, ["--port", "abc"], "--port", "leed-app --help"),
]


@pytest.mark.parametrize(("command", "args", "names", "help_hint"), CASES)
def test_a_refused_command_line_is_one_line(command: object, args: list[str], names: str, help_hint: str) -> None:
    prog = help_hint.removesuffix(" --help").split()[0]
    result = CliRunner().invoke(command, args, prog_name=prog)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Usage:" not in result.stderr, result.stderr
    assert names in lines[0] and lines[0].endswith(f"see {help_hint}"), lines[0]
