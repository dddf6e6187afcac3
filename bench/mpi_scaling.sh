#!/usr/bin/env bash
# Weak and strong scaling of `vknode-mpi sample`: leapfrog steps per second with N ranks against
# one rank, measured in the same run, and the parallel efficiency.
#   bench/mpi_scaling.sh [--device cpu|gpu] [--ranks "1 2"] [--chains-per-rank N] [--dim D]
#                        [--warmup N] [--draws N] [--bin DIR]
# cpu: one thread per rank (the ranks are the parallelism measured); gpu: one rank per GPU
# (--gpus all: rank r on GPU r). Prints one line per run and a table; figures go to
# docs/benchmarks.md.
set -euo pipefail
device=cpu ranks="1 2" per_rank=64 dim=100 warmup=200 draws=200
bin=$(cd "$(dirname "$0")/.." && pwd)/build/tools
while [[ $# -gt 0 ]]; do
  case $1 in
    --device) device=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --chains-per-rank) per_rank=$2; shift 2 ;;
    --dim) dim=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --draws) draws=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_rmaps_base_oversubscribe=1
mpirun=${MPIEXEC:-mpirun}
extra=(--device "$device" --no-progress --warmup "$warmup" --draws "$draws" --seed 1)
[[ $device == cpu ]] && extra+=(--threads 1)
[[ $device == gpu ]] && extra+=(--gpus all)

# Prints the leapfrog steps per second of one run.
rate() {
  local np=$1 chains=$2 out
  out=$(timeout "${RUN_TIMEOUT:-600}" "$mpirun" -np "$np" --bind-to none "$bin/vknode-mpi" sample normal \
        --params "d=$dim" --chains "$chains" "${extra[@]}" 2>&1 >/dev/null) || true
  if ! echo "$out" | grep -q "leapfrog steps/s"; then
    echo "$out" | tail -15 >&2
    echo 0
    return
  fi
  echo "$out" | grep -E "^vknode-mpi: rank|leapfrog steps/s" >&2
  echo "$out" | sed -n 's/.*: \([0-9.e+]*\) leapfrog steps\/s/\1/p'
}

printf '%-7s %-6s %-8s %-16s %-10s %s\n' mode ranks chains "steps/s" speedup efficiency
for mode in strong weak; do
  base=""
  for np in $ranks; do
    first=${ranks%% *}
    if [[ $mode == strong ]]; then chains=$((per_rank * first)); else chains=$((per_rank * np)); fi
    r=$(rate "$np" "$chains")
    [[ -z $base ]] && base=$r
    python3 - "$mode" "$np" "$chains" "$r" "$base" "$first" <<'PY'
import sys
mode, np, chains, r, base, first = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
speedup = r / base if base > 0 else float("nan")
eff = speedup / (np / first)
print(f"{mode:<7} {np:<6} {chains:<8} {r:<16.4g} {speedup:<10.3f} {eff:.1%}")
PY
  done
done
