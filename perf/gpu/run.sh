#!/usr/bin/env bash
# Runs on a lent GPU machine that has no .NET SDK (DESIGN.md section 8), from the repository root with the bundle
# perf/gpu/bundle.sh made at .gpu/app.tar.xz (or BUNDLE=path): unpack, list the devices, validate every attention and
# scan kernel family on Cuda against the float64 Reference and time the standard grid (routekit-perf all --backend cuda),
# then the PyTorch baselines on the same shapes (perf/gpu/torch_baseline.py), and write everything plus one markdown
# table with ratios (gpu-table.md) under $OUT, then attention versions 1 and 2 on B1 H8 N4096 D64 (attention-v1/, -v2/).
# Each step has its own timeout (30 + 30 + 300 + 120 + 2 x 45 s = 9.75 minutes at most; a run's limit is 10).
# BACKEND=ilgpu-cpu runs the same steps on the CPU simulator with --smoke (what the bundle test does, without PyTorch).
# routekit-perf refuses to time on a busy machine (1-minute load average above 0.5 per core; exit code 3, nothing ran);
# ALLOW_BUSY=1 passes --allow-busy, and the results are then marked as taken on a busy machine.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-$root/.gpu/out}"
BUNDLE="${BUNDLE:-$root/.gpu/app.tar.xz}"
BACKEND="${BACKEND:-cuda}"
busy=()
[ "${ALLOW_BUSY:-0}" = 1 ] && busy=(--allow-busy)
mkdir -p "$OUT"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=0

# step NAME SECONDS COMMAND...: runs with a timeout, logs to $OUT/NAME.log, records the exit code in $OUT/steps.md.
step() {
  local name="$1" limit="$2"
  shift 2
  local start=$SECONDS
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "| $name | $rc | $((SECONDS - start)) s | \`$*\` |" >> "$OUT/steps.md"
  [ "$rc" -eq 0 ] || failed=1
  return "$rc"
}

printf '| step | exit | time | command |\n|---|---:|---:|---|\n' > "$OUT/steps.md"
step unpack 30 tar xJf "$BUNDLE" -C "$work" || { cat "$OUT/steps.md"; exit 1; }
app="$work/app"
echo "bundle commit: $(cat "$app/COMMIT")" > "$OUT/bundle.txt"
step devices 30 "$app/routekit" devices
if [ "$BACKEND" = cuda ]; then
  nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
  step all-cuda 300 "$app/routekit-perf" all --backend cuda --out "$OUT" "${busy[@]}"
  step torch 120 python3 "$root/perf/gpu/torch_baseline.py" --out "$OUT"
  # Both attention kernel versions on one shape, validated then timed (the grid above times version 1 only):
  # version 2 is the FlashAttention-2-style register-tiled forward and backward (docs/variants/attention.md).
  for v in 1 2; do
    step "attention-v$v" 45 "$app/routekit-perf" attention --variant "$v" --backend cuda --shape 1,8,4096,4096,64 \
      --out "$OUT/attention-v$v" "${busy[@]}"
  done
else
  step "all-$BACKEND" 400 "$app/routekit-perf" all --backend "$BACKEND" --smoke --out "$OUT" "${busy[@]}"
fi
cat "$OUT/steps.md"
[ -f "$OUT/gpu-table.md" ] && cat "$OUT/gpu-table.md"
exit "$failed"
