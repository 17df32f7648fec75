#!/usr/bin/env bash
# make gpu-wheels: the wheels the GPU machine lacks (onnxruntime-gpu, PyAV), for Python 3.12,
# as ONE xz archive cut into pieces small enough to ride along with the repo in a device call
# (a call carries 64 MiB: the tracked tree plus one piece). Writes .gpw/pNN (git-ignored) and
# prints how the pieces travel. On the GPU machine, after the last piece:
#   mkdir -p /tmp/site-new && cat /tmp/parts/p* | xz -dc -T8 | tar xf - -C /tmp/site-new && mv /tmp/site-new /tmp/site
#   export PYTHONPATH=/tmp/site:$PWD
# (measured 2026-11-28: 291 MB of wheels -> 229 MB of xz, 7 pieces of 33 MB; NOTES.md)
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=${WHEELS:-"onnxruntime-gpu==1.31.1 av==18.1.0"}
tracked=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
limit=$((64 * 1024 * 1024 - 1000000))  # a call's limit, less a margin for files git does not ignore
piece=$(( (limit - tracked) / 1000000 * 1000000 ))
[ "$piece" -gt 5000000 ] || { echo "gpu-wheels: the tracked tree ($tracked bytes) leaves no room for a piece" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$tmp/whl" $WHEELS
mkdir -p "$tmp/site" && for w in "$tmp"/whl/*.whl; do (cd "$tmp/site" && python3 -m zipfile -e "$w" .); done
rm -rf .gpw && mkdir -p .gpw
(cd "$tmp/site" && tar cf - . | xz -T0 -6) | split -b "$piece" -d -a 2 - .gpw/p
n=$(ls .gpw | wc -l)
echo "gpu-wheels: $(du -sh .gpw | cut -f1) in $n pieces of at most $((piece / 1000000)) MB in .gpw/ (tracked tree $((tracked / 1000000)) MB)"
echo "send each piece in its own device call, one right after the other (the machine goes back after 30 s idle):"
echo "  move .gpw/pNN alone into a carried folder, carry it, and run: mkdir -p /tmp/parts && cp CARRIED/* /tmp/parts/"
