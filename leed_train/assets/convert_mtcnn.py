"""Convert facenet-pytorch's MTCNN weights into `mtcnn.safetensors` (run once by a maintainer).

    pip download --no-deps facenet-pytorch==2.6.0 -d /tmp/fp
    python leed_train/assets/convert_mtcnn.py /tmp/fp/facenet_pytorch-2.6.0-py3-none-any.whl

Reads `facenet_pytorch/data/{pnet,rnet,onet}.pt` (plain state dicts) and the licence from
the wheel without importing facenet_pytorch, checks that each loads strictly into
`leed_train.mtcnn`'s modules, and writes beside this script `mtcnn.safetensors` (keys
prefixed `pnet.`, `rnet.`, `onet.`) and `MTCNN_LICENSE.txt` (MIT text and provenance).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import zipfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from leed_train.mtcnn import NETS

HERE = Path(__file__).resolve().parent


def convert(wheel: Path, out_dir: Path = HERE) -> Path:
    """Write `mtcnn.safetensors` and `MTCNN_LICENSE.txt` into `out_dir`; return the weights path."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        version = re.search(r"facenet_pytorch-([^/]+)\.dist-info/", "\n".join(names))
        if version is None:
            raise SystemExit(f"{wheel}: not a facenet-pytorch wheel")
        licence = zf.read(f"facenet_pytorch-{version.group(1)}.dist-info/LICENSE.md").decode()
        tensors: dict[str, torch.Tensor] = {}
        provenance = []
        for name, module in NETS.items():
            member = f"facenet_pytorch/data/{name}.pt"
            raw = zf.read(member)
            state = torch.load(io.BytesIO(raw), weights_only=True, map_location="cpu")
            module().load_state_dict(state, strict=True)
            tensors.update({f"{name}.{k}": v.contiguous() for k, v in state.items()})
            provenance.append(f"  {member}  sha256 {hashlib.sha256(raw).hexdigest()}")
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / "mtcnn.safetensors"
    save_file(tensors, str(weights), metadata={"source": f"facenet-pytorch=={version.group(1)}"})
    weights.chmod(0o644)  # safetensors creates it owner-only; it ships in the wheel
    (out_dir / "MTCNN_LICENSE.txt").write_text(
        "MTCNN weights in mtcnn.safetensors (P-, R- and O-net; keys prefixed pnet., rnet., onet.)\n"
        f"come unchanged from the PyPI package facenet-pytorch=={version.group(1)} ({wheel.name}),\n"
        "https://github.com/timesler/facenet-pytorch, files:\n" + "\n".join(provenance) + "\n"
        f"converted by leed_train/assets/convert_mtcnn.py; mtcnn.safetensors sha256 "
        f"{hashlib.sha256(weights.read_bytes()).hexdigest()}\n\n"
        "Their licence follows.\n\n" + licence.strip() + "\n"
    )
    return weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="facenet_pytorch-2.6.0-py3-none-any.whl")
    print(convert(parser.parse_args().wheel))


if __name__ == "__main__":
    main()
