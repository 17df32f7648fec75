"""Which backend runs an export folder here, and which artifact it runs.

Preference: the order of the backend table (`table.BACKENDS`). `auto` takes the first that
can work and says in one line why the better ones could not; an explicit request
that cannot work is refused with what is missing and how to get it (never a silent downgrade).

On a CPU `auto` measures rather than assumes: when the first kind that works runs on the CPU
and a CPU kind listed after it works too (openvino after onnxruntime-cpu), both run the graph
at batch 1 with their default options (FP32: bf16 changes the numbers, so only the user
asks for it), calls interleaved (`time_kinds`), and the later kind is taken only when it takes
at most RACE_MARGIN of the first one's time and saves RACE_MIN_MS per call (`pick_faster`);
the reason gives both times. Measured on a 2-core Zen 4 VM (docs/benchmarks.md), OpenVINO
FP32 ran the shipped tw-tiny `edit` graph at 0.7-1.0x onnxruntime's speed and a `small`
export's at 1.1x: which wins depends on the graph and the CPU, hence the timing (about 1 s
once per process and graph for tw-tiny). A graph the first kind runs in under RACE_MIN_MS is
not timed further.

Artifact names: `<graph>` and `<graph>.fp16` are ONNX graphs; engines are
`engine_artifact_name(graph, library, fp16)`, e.g. `edit.trt`, `edit.fp16.rtx`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from leed_runtime import cuda
from leed_runtime.backends.base import Backend, BackendRow, gate_feeds
from leed_runtime.backends.table import BACKENDS, backend_row, engine_rows, open_backend
from leed_runtime.errors import LeedError
from leed_runtime.manifest import Manifest

NO_GPU = "no CUDA GPU here"
PRECISIONS = ("auto", "fp16", "fp32")
RACE_MARGIN = 0.9  # a later CPU kind must take at most 90% of the first one's time per call
RACE_MIN_MS = 2.0  # ... and save at least this much per call (below it, timing noise decides)
RACE_ROUNDS = 5  # timed calls per kind, interleaved (at least 2, within RACE_BUDGET_S)
RACE_BUDGET_S = 2.0


def _engine_row(library: str) -> BackendRow:
    """The engine row named by its library ("tensorrt_rtx") or its kind ("tensorrt-rtx")."""
    for row in engine_rows():
        if library in (row.library, row.kind):
            return row
    raise LeedError(
        f"engine library {library!r} is unknown; choose {' or '.join(row.library for row in engine_rows())}"
    )


def engine_artifact_name(graph: str, library: str, fp16: bool) -> str:
    """Manifest name of an engine: `engine_artifact_name("edit", "tensorrt_rtx", True)` ->
    "edit.fp16.rtx". `library` is the library ("tensorrt", "tensorrt_rtx") or backend kind."""
    return f"{graph}{'.fp16' if fp16 else ''}.{_engine_row(library).engine_tag}"


def _candidates(row: BackendRow, graph: str, precision: str) -> list[str]:
    """Artifact names that serve `graph` on `row`'s kind, best first."""
    if precision not in PRECISIONS:
        raise LeedError(f"--precision {precision!r} is unknown; choose one of {', '.join(PRECISIONS)}")
    if row.engine_tag is not None:
        names = {p: engine_artifact_name(graph, row.library, p == "fp16") for p in ("fp16", "fp32")}
    else:
        names = {"fp16": f"{graph}.fp16", "fp32": graph}
    # without CUDA onnxruntime casts around FP16 ops (no speed-up): auto takes FP32 there
    order = {"auto": ("fp16", "fp32") if row.uses_cuda else ("fp32",), "fp16": ("fp16",), "fp32": ("fp32",)}
    return [names[p] for p in order[precision]]


def artifact_for_backend(kind: str, manifest: Manifest, graph: str, precision: str = "auto") -> str:
    """The manifest artifact that runs `graph` on backend `kind` (FP16 first on GPUs)."""
    row = backend_row(kind)
    names = _candidates(row, graph, precision)
    for name in names:
        if name in manifest.artifacts:
            return name
    fix = f"--engine {kind}" if row.engine_tag is not None else ""
    raise LeedError(
        f"the export has no {' or '.join(names)} for --backend {kind} (has: {', '.join(sorted(manifest.artifacts))}); "
        f"re-run leed-export {fix}".rstrip()
    )


def _problem(row: BackendRow, folder: Path, manifest: Manifest, graph: str, precision: str) -> str | None:
    """Why `row`'s kind cannot run `graph` here (with the fix), or None when it can."""
    try:
        if row.uses_cuda and not cuda.cuda_available():
            return _engine_version_problem(row, folder, manifest, graph, precision) or NO_GPU
        name = artifact_for_backend(row.kind, manifest, graph, precision)
        if not (Path(folder) / manifest.artifacts[name].file).is_file():
            return f"{Path(folder) / manifest.artifacts[name].file} missing; re-run leed-export"
        module = row.load()
        compute_capability = cuda.cuda_info().gpus[0].compute_capability if row.uses_cuda else None
        return row.library_problem(module) or row.artifact_problem(folder, manifest, name, module, compute_capability)
    except LeedError as exc:
        return str(exc)


def _engine_version_problem(
    row: BackendRow, folder: Path, manifest: Manifest, graph: str, precision: str
) -> str | None:
    """Without a GPU: an engine the export lists but this library version cannot load (with
    the rebuild command) is the more useful answer than "no GPU"; None otherwise."""
    if row.engine_tag is None:
        return None
    try:
        name = artifact_for_backend(row.kind, manifest, graph, precision)
        module = row.load()
    except LeedError:  # no such engine, or no library: "no GPU" stays the answer
        return None
    return row.artifact_problem(folder, manifest, name, module, None)


def available_backends(folder: Path | None = None, manifest: Manifest | None = None, graph: str = "edit") -> list[str]:
    """Backends that can run here, best first; with a manifest, only those whose artifact
    for `graph` is present (and, for engines, matches this library version and GPU)."""
    if manifest is None:
        return [row.kind for row in BACKENDS if _installed(row) and (not row.uses_cuda or cuda.cuda_available())]
    return [row.kind for row in BACKENDS if _problem(row, Path(folder or "."), manifest, graph, "auto") is None]


def _installed(row: BackendRow) -> bool:
    try:
        return row.library_problem(row.load()) is None
    except LeedError:
        return False


def choose_backend(
    requested: str, folder: Path, manifest: Manifest, artifact_name: str = "edit", precision: str = "auto"
) -> tuple[str, str]:
    """(backend kind, one-line reason) for graph `artifact_name`. `auto` takes the best that
    works; an explicit kind that cannot work raises a LeedError naming what is missing."""
    if requested != "auto":
        problem = _problem(backend_row(requested), folder, manifest, artifact_name, precision)
        if problem is not None:
            raise LeedError(f"--backend {requested}: {problem}")
        return requested, f"{requested}: requested"
    skipped: dict[str, list[str]] = {}
    for index, row in enumerate(BACKENDS):
        problem = _problem(row, folder, manifest, artifact_name, precision)
        if problem is None:
            if not skipped:
                detail = "the fastest backend, available here"
            elif list(skipped) == [NO_GPU]:
                detail = NO_GPU
            else:
                detail = "; ".join(f"{', '.join(ks)} not used: {p}" for p, ks in skipped.items())
            if row.uses_cuda:
                return row.kind, f"{row.kind}: {detail}"
            kind, note = _race(row, BACKENDS[index + 1 :], folder, manifest, artifact_name, precision)
            parts = [note] if kind != row.kind and not skipped else [detail, note]
            return kind, f"{kind}: " + "; ".join(p for p in parts if p)
        skipped.setdefault(problem, []).append(row.kind)
    raise LeedError(
        "no backend can run this export: " + "; ".join(f"{', '.join(ks)}: {p}" for p, ks in skipped.items())
    )


# -- auto on a CPU: the faster of the CPU kinds that work, measured ------------------------------
_TIMED: dict[tuple, dict[str, float | str]] = {}  # per process: (kinds, graph files, precision) -> ms


def _race(
    first: BackendRow, later: tuple[BackendRow, ...], folder: Path, manifest: Manifest, graph: str, precision: str
) -> tuple[str, str]:
    """(kind, note) among `first` and the later CPU kinds that work here: `first` unless one is
    measurably faster (`pick_faster`); the note says what was timed, or why a kind was not."""
    rivals = [r.kind for r in later if not r.uses_cuda and _problem(r, folder, manifest, graph, precision) is None]
    if not rivals:
        return first.kind, ""
    kinds = (first.kind, *rivals)
    files = tuple(manifest.artifacts[artifact_for_backend(k, manifest, graph, precision)].sha256 for k in kinds)
    key = (kinds, str(Path(folder).resolve()), graph, files, precision)
    if key not in _TIMED:
        _TIMED[key] = time_kinds(kinds, folder, manifest, graph, precision)
    return pick_faster(first.kind, _TIMED[key], graph)


def pick_faster(first: str, timings: dict[str, float | str], graph: str) -> tuple[str, str]:
    """(kind, note) from measured ms per call (`time_kinds`; a string: why that kind could not
    be timed). `first` stays unless another kind takes at most RACE_MARGIN of its time and
    saves RACE_MIN_MS per call; kinds that were not timed (`first` below RACE_MIN_MS) go unsaid."""
    base = timings[first]
    if isinstance(base, str):
        return first, ""
    failed = {k: v for k, v in timings.items() if isinstance(v, str)}
    timed = {k: v for k, v in timings.items() if not isinstance(v, str) and k != first}
    notes = [f"{k} not used: {why}" for k, why in failed.items()]
    if timed:
        best = min(timed, key=lambda k: timed[k])
        ms = timed[best]
        if ms <= RACE_MARGIN * base and base - ms >= RACE_MIN_MS:
            return best, "; ".join(
                [f"faster than {first} on {graph} here ({ms:.1f} vs {base:.1f} ms per call, timed now)", *notes]
            )
        notes = [
            f"{k} not used: not faster on {graph} here ({v:.1f} vs {base:.1f} ms per call on {first}, timed now)"
            for k, v in timed.items()
        ] + notes
    return first, "; ".join(notes)


def time_kinds(
    kinds: tuple[str, ...], folder: Path, manifest: Manifest, graph: str, precision: str
) -> dict[str, float | str]:
    """Median ms per call of `graph` at batch 1 on each kind, calls interleaved (one round runs
    each kind once, so a load change on a shared machine hits all alike); a kind that cannot
    open the graph gets its one-line error instead. Only `kinds[0]` is timed when it runs the
    graph in under RACE_MIN_MS: no other kind could then save RACE_MIN_MS."""
    out: dict[str, float | str] = {}
    engines: dict[str, Backend] = {}

    def run(kind: str, call: Callable[[], float | None]) -> float | None:
        """`call` on `kind`'s engine; a kind that fails to run the graph leaves the race with its line."""
        try:
            return call()
        except LeedError as exc:
            out[kind] = str(exc)
            with contextlib.suppress(Exception):
                engines.pop(kind).deactivate()
            return None

    try:
        for kind in kinds:
            try:
                engine = open_backend(kind, folder, manifest, artifact_for_backend(kind, manifest, graph, precision))
                engine.activate()
            except LeedError as exc:
                out[kind] = str(exc)
                continue
            engines[kind] = engine
            if kind == kinds[0]:  # warm, then one timed call: cheap graphs stop here
                feeds = gate_feeds(engine.inputs, batch=1)
                first_ms = run(kind, lambda e=engine, f=feeds: _timed_call(e, f, warm=True))
                if first_ms is not None and first_ms < RACE_MIN_MS:
                    return {kind: first_ms}
        feeds = gate_feeds(next(iter(engines.values())).inputs, batch=1) if engines else {}
        for kind, engine in list(engines.items()):  # warm
            run(kind, lambda e=engine: _timed_call(e, feeds))
        ms: dict[str, list[float]] = {k: [] for k in engines}
        start = time.perf_counter()
        for round_ in range(RACE_ROUNDS):
            if round_ >= 2 and time.perf_counter() - start > RACE_BUDGET_S:
                break
            for kind, engine in list(engines.items()):
                took = run(kind, lambda e=engine: _timed_call(e, feeds))
                if took is not None:
                    ms[kind].append(took)
        out.update({k: float(np.median(v)) for k, v in ms.items() if k in engines and v})
        return {k: out[k] for k in kinds if k in out}
    finally:
        for engine in engines.values():
            with contextlib.suppress(Exception):
                engine.deactivate()


def _timed_call(engine: Backend, feeds: dict[str, np.ndarray], warm: bool = False) -> float:
    """ms of one call of `engine` on `feeds` (after an untimed one with `warm`)."""
    if warm:
        engine.infer(feeds)
    start = time.perf_counter()
    engine.infer(feeds)
    return (time.perf_counter() - start) * 1e3
