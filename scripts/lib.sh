# Shared helpers for the project's scripts (sourced, not run).
# Everything the scripts install goes outside the tree: apt packages system-wide, Python packages into a
# private pip --target dir, models into $SHADOWKV_MODELS.
set -euo pipefail
SHADOWKV_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHADOWKV_CACHE="${SHADOWKV_CACHE:-$HOME/.cache/shadowkv}"
SHADOWKV_MODELS="${SHADOWKV_MODELS:-$SHADOWKV_CACHE/models}"
SHADOWKV_PYDEPS="${SHADOWKV_PYDEPS:-$SHADOWKV_CACHE/pydeps}"
export SHADOWKV_ROOT SHADOWKV_CACHE SHADOWKV_MODELS SHADOWKV_PYDEPS
# OpenMP threads sleep instead of spinning while they wait (see apps/main.cpp).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
export PIP_ROOT_USER_ACTION=ignore PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

APT_PACKAGES=(build-essential cmake pkg-config python3 python3-pip libopenblas-dev liblapacke-dev libpcre2-dev zlib1g-dev
  nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev libcpp-httplib-dev r-cran-janeaustenr wamerican)
PY_PACKAGES=(numpy==1.26.4 gguf==0.17.1 sentencepiece==0.2.3 protobuf==7.36.2 tokenizers==0.23.3 openai==1.109.1)

log() { echo "[shadowkv] $*" >&2; }

ensure_apt_deps() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Python packages used by the reference tests and fixture scripts, in a private target dir.
ensure_pydeps() {
  local stamp="$SHADOWKV_PYDEPS/.installed-$(echo "${PY_PACKAGES[*]}" | tr ' =' '_-')"
  if [[ ! -f "$stamp" ]]; then
    log "installing Python packages into $SHADOWKV_PYDEPS: ${PY_PACKAGES[*]}"
    rm -rf "$SHADOWKV_PYDEPS" && mkdir -p "$SHADOWKV_PYDEPS"
    python3 -m pip install -q --no-warn-script-location --target "$SHADOWKV_PYDEPS" "${PY_PACKAGES[@]}"
    touch "$stamp"
  fi
  export PYTHONPATH="$SHADOWKV_PYDEPS${PYTHONPATH:+:$PYTHONPATH}"
}

# build_project [DIR [EXTRA CMAKE ARGS...]]
build_project() {
  local dir="${1:-$SHADOWKV_ROOT/build}"
  (($# > 0)) && shift
  cmake -S "$SHADOWKV_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)"
}
