#!/usr/bin/env bash
# Install torch and torchvision from the PyTorch wheel index.
#   bash install.sh          # CPU-only build (small download, no nvidia-* wheels)
#   bash install.sh cu130    # a CUDA 13.0 build; cu126, cu128 ... for other CUDAs
set -euo pipefail

build="${1:-cpu}"
# The pair this site is tested with: each torchvision release matches one torch release
torch_version="${TORCH_VERSION:-2.14.1}"
torchvision_version="${TORCHVISION_VERSION:-0.29.1}"

if [[ ! "$build" =~ ^(cpu|cu[0-9]{3})$ ]]; then
  echo "install.sh: unknown build '$build';" \
       "use cpu or a CUDA tag such as cu126 or cu130" >&2
  exit 2
fi

# Both from ONE index, so that both are the same build (cpu, cu130 ...). Remove an old
# pair first: pip counts torchvision 0.29.1+cu130 as "torchvision==0.29.1" and keeps it.
pip uninstall -y torch torchvision
pip install "torch==$torch_version" "torchvision==$torchvision_version" \
  --index-url "https://download.pytorch.org/whl/$build"
# A mixed pair installs without complaint and fails only here, at import
python -c 'import torch, torchvision; print(torch.__version__, torchvision.__version__)'
