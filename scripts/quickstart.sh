#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a working vknode:
#   scripts/quickstart.sh run    install what is missing, build, run the main job
#   scripts/quickstart.sh test   install what is missing, build, run every test
#   scripts/quickstart.sh reliability   also clang 16 and libFuzzer; ASan+UBSan and TSan test
#                                       builds and fuzz smoke runs (scripts/ci_sanitizers.sh all)
# Environment: BUILD_DIR (default build), JOBS (default: number of cores).
set -euo pipefail

mode=${1:-run}
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
jobs=${JOBS:-$(nproc)}

packages=(cmake ninja-build g++ pkg-config libvulkan-dev mesa-vulkan-drivers vulkan-validationlayers
          glslc libshaderc-dev spirv-tools libspirv-cross-c-shared-dev libgtest-dev libgmock-dev
          libbenchmark-dev libopenmpi-dev openmpi-bin)
# The fuzz build needs clang 16 (libstdc++ 12's std::expected) and its libFuzzer runtime.
reliability_packages=(clang-16 libclang-rt-16-dev)

install_missing() {
  local missing=()
  for p in "${packages[@]}" "$@"; do
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

# Starts the daemon on a private socket, runs the self-check as a client of it, shows its
# status, and stops it gracefully.
run_daemon_and_client() {
  local dir
  dir=$(mktemp -d)
  "$build/tools/vknode" serve --socket "$dir/vknode.sock" --state-dir "$dir/state" &
  local pid=$!
  for _ in $(seq 100); do
    "$build/tools/vknode" ping --socket "$dir/vknode.sock" >/dev/null 2>&1 && break
    sleep 0.1
  done
  local rc=0
  "$build/tools/vknode" selfcheck --daemon --socket "$dir/vknode.sock" || rc=$?
  "$build/tools/vknode" status --socket "$dir/vknode.sock" || rc=$?
  "$build/tools/vknode" stop --socket "$dir/vknode.sock" || rc=$?
  wait "$pid" || rc=$?
  rm -rf "$dir"
  return "$rc"
}

case "$mode" in
  run)
    install_missing
    build_all
    "$build/tools/vknode" devices
    "$build/tools/vknode" selfcheck
    run_daemon_and_client
    ;;
  test)
    install_missing
    build_all
    # Tests run with the Khronos validation layer on (ctest sets VKNODE_VALIDATION=1).
    ctest --test-dir "$build" --output-on-failure -j "$jobs" --timeout 600
    ;;
  reliability)
    install_missing "${reliability_packages[@]}"
    JOBS=$jobs "$top/scripts/ci_sanitizers.sh" all
    ;;
  *)
    echo "usage: $0 run|test|reliability" >&2
    exit 2
    ;;
esac
