#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a working vknode:
#   scripts/quickstart.sh run    install what is missing, build, run the main job
#   scripts/quickstart.sh test   install what is missing, build, run every test
# Environment: BUILD_DIR (default build), JOBS (default: number of cores).
set -euo pipefail

mode=${1:-run}
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
jobs=${JOBS:-$(nproc)}

packages=(cmake ninja-build g++ pkg-config libvulkan-dev mesa-vulkan-drivers vulkan-validationlayers
          glslc libshaderc-dev spirv-tools libspirv-cross-c-shared-dev libgtest-dev libgmock-dev
          libbenchmark-dev)

install_missing() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "quickstart: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

build_all() {
  cmake -S "$top" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
  cmake --build "$build" -j "$jobs"
}

case "$mode" in
  run)
    install_missing
    build_all
    "$build/tools/vknode" devices
    "$build/tools/vknode" selfcheck
    ;;
  test)
    install_missing
    build_all
    # Tests run with the Khronos validation layer on (ctest sets VKNODE_VALIDATION=1).
    ctest --test-dir "$build" --output-on-failure -j "$jobs" --timeout 600
    ;;
  *)
    echo "usage: $0 run|test" >&2
    exit 2
    ;;
esac
