#!/usr/bin/env bash
# Regenerates every committed CPU table in perf/results/ on a quiet machine, one benchmark at a time, from the
# repository root of a clean checkout: build once, then for each benchmark wait until the 1-minute load average is at
# or below 0.5 per logical core (the limit routekit-perf enforces; a benchmark that just finished keeps the average up
# for about a minute), then run it. routekit-perf itself refuses a busy start (exit 3), so nothing here is timed on a
# busy machine; the script stops at the first failure.
#
# Expected durations on the 2-core AMD EPYC VM at the default sizes (excluding the waits for quiet):
#   attention-managed  ~2 min   grid of 20 shapes x 4 variants ~85 s of timed calls (computed from
#                                managed-attention-2026-11-28.csv: warm-up, calibration and 5 samples of >= 50 ms each),
#                                the N = 65536 memory check 4 s, two FMA peaks and setup
#   featurenorms       ~15 s    bandwidths on 512 MiB (read and copy, 8 passes each), 4 shapes x 11 calls; most of it is
#                                generating 0.5 G random inputs
#   scan               ~20 s    L = 2k..64k; dominated by the single-threaded loop (2 x 2.4 s summed over L) and the
#                                backward (3 x 1.2 s)
#   onnx               ~1-2 min 9 attention rows validated against the float64 reference (seconds each at N = 4096)
#                                and 2 norm rows, 9 interleaved samples each; 05:41 -> 05:42 UTC on 2026-11-28
#   all (managed)      ~2 min   the standard grid, scan and norms; 05:42 -> 05:44 UTC on 2026-11-28
#   graph              ~15 s    power-law graph of 10^6 edges, forward/backward, dense attention at N = 8192; 12 s on 2026-12-02
#   depth              ~3 min   6 depth-router shapes forward and backward; 164 s on 2026-12-02
#   widths             ~3-5 min three child processes (none, DOTNET_EnableAVX512=0, also DOTNET_EnableAVX2=0), each an
#                                FMA peak, Managed attention B1 H4 N2048 D64 and the selective scan, validated then timed
#   onnx-vector256     as onnx  `onnx` again with DOTNET_EnableAVX512=0: RouteKit on its Vector256 path (ONNX Runtime keeps
#                                its own dispatch)
#   pretrained         ~2-4 min MiniLM and arctic-xs, 256 sentences, batch 1 and 32, 5 interleaved passes per side after a
#                                validation and a warm-up pass (run as `pretrained --model minilm,arctic-xs`)
# Total about 6-8 minutes plus the waits (about 1 minute after each benchmark that loaded both cores).
#
# Outputs (dates are the UTC start date of each run):
#   perf/results/managed-attention-<date>.md, .csv     attention-managed
#   perf/results/featurenorms-managed-<date>.md, .csv  featurenorms (rate vs the read bandwidth and vs the copy)
#   perf/results/scan-managed-<date>.md                scan
#   perf/results/onnxruntime-<date>.md, .csv           onnx
#   perf/results/all-managed.md, .csv                  all --backend managed
#   perf/results/graph-managed-<date>.md               graph
#   perf/results/managed-depth-<date>.md               depth
#   perf/results/pretrained-managed-vs-ort-<date>.md   pretrained (both models in one table)
#   perf/results/widths-<date>.md                      widths
#   perf/results/onnxruntime-vector256-<date>.md, .csv onnx-vector256
# Then update perf/results/README.md and the "Measured performance" paragraph of README.md from these files.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
out="${OUT:-perf/results}"
cores=$(nproc)
# Longest wait for quiet before giving up on one benchmark, in seconds.
max_wait="${MAX_WAIT:-900}"

wait_quiet() {
  local waited=0
  while awk -v c="$cores" '{ exit !($1 > 0.5 * c) }' /proc/loadavg; do
    if [ "$waited" -ge "$max_wait" ]; then
      echo "run-quiet: load average still $(cut -d' ' -f1-3 /proc/loadavg) after ${max_wait} s (limit $(awk -v c="$cores" 'BEGIN { print 0.5 * c }')); stopping" >&2
      exit 3
    fi
    sleep 10
    waited=$((waited + 10))
  done
}

perf() {
  wait_quiet
  echo "[$(date -u +%H:%M:%S)] routekit-perf $* (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  local start=$SECONDS
  dotnet run -c Release --no-build --project perf -- "$@"
  echo "[$(date -u +%H:%M:%S)] done in $((SECONDS - start)) s" >&2
}

dotnet build -c Release
if [ $# -gt 0 ]; then
  # Only the named commands (each one word, e.g. `run-quiet.sh gemm train`).
  for command in "$@"; do
    case "$command" in
      pretrained) perf pretrained --model minilm,arctic-xs --out "$out" > /dev/null ;;
      onnx-vector256) DOTNET_EnableAVX512=0 perf onnx --out "$out" > /dev/null ;;
      *) perf "$command" --out "$out" > /dev/null ;;
    esac
  done
  git status --short -- "$out"
  exit 0
fi
perf attention-managed --out "$out" > /dev/null
perf featurenorms --out "$out" > /dev/null
perf scan --out "$out" > /dev/null
perf onnx --out "$out" > /dev/null
perf all --backend managed --out "$out" > /dev/null
perf gemm --out "$out" > /dev/null
perf training-ops --out "$out" > /dev/null
perf conv1d --out "$out" > /dev/null
perf train --out "$out" > /dev/null
perf graph --out "$out" > /dev/null
perf depth --out "$out" > /dev/null
perf pretrained --model minilm,arctic-xs --out "$out" > /dev/null
perf widths --out "$out" > /dev/null
DOTNET_EnableAVX512=0 perf onnx --out "$out" > /dev/null
git status --short -- "$out"
