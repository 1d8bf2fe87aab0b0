# Shared settings of the scripts; sourced, not run.
PSEARCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PSEARCH_TORCH_VERSION=2.11.0
PSEARCH_TORCHVISION_VERSION=0.26.0
PSEARCH_VENV="${PSEARCH_VENV:-$HOME/.cache/psearch/venv}"
PSEARCH_BUILD_DIR="${PSEARCH_BUILD_DIR:-$PSEARCH_ROOT/build}"
# Pretrained weights converted by scripts/convert_weights.py (setup.sh runs it); the C++
# tests and fixtures read them from here.
export PSEARCH_WEIGHTS_DIR="${PSEARCH_WEIGHTS_DIR:-$HOME/.cache/psearch/weights}"
# A machine that already has torch (the GPU build machine, which has no package
# registry) can point PSEARCH_PYTHON at its interpreter and skip setup.sh.
PSEARCH_PYTHON="${PSEARCH_PYTHON:-$PSEARCH_VENV/bin/python}"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/psearch/ccache}"
# Relative paths in ccache's hash let every clone (CI's fresh ones included) share hits.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PSEARCH_ROOT}"
export CCACHE_NOHASHDIR=true
