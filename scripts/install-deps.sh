#!/usr/bin/env bash
# Installs everything sieve needs to build and test, idempotently.
# Debian packages through apt-get, Python packages through pip. Safe to run repeatedly:
# it only installs what is missing. Set SIEVE_SKIP_PIP=1 to skip the Python part.
set -euo pipefail

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  libeigen3-dev nlohmann-json3-dev libfmt-dev libcli11-dev libpcre2-dev
  libopenblas-dev libomp-dev
)
PIP_PACKAGES=(numpy matplotlib)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[sieve] installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${SIEVE_SKIP_PIP:-0}" != "1" ]; then
  PY=${PYTHON:-python3}
  need=()
  for p in "${PIP_PACKAGES[@]}"; do
    $PY -c "import $p" 2>/dev/null || need+=("$p")
  done
  if ((${#need[@]})); then
    echo "[sieve] installing Python packages: ${need[*]}" >&2
    $PY -m pip install -q --disable-pip-version-check "${need[@]}"
  fi
fi
