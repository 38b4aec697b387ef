#!/usr/bin/env bash
# Publishes routekit-perf (perf/) and routekit (engine/) self-contained for linux-x64 into .gpu/app and packs them as
# .gpu/app.tar.xz, for a GPU machine that has no .NET SDK (DESIGN.md section 8). Run from anywhere.
# BUNDLE_DIR=folder puts app/ and app.tar.xz there instead of .gpu/ (the bundle test uses a temporary folder).
# Size: no ReadyToRun images (JIT at start costs seconds, R2R doubles the managed DLLs), no pdbs, no XML docs, invariant
# globalization (no ICU data), English-only satellite resources, and no ONNX Runtime native library
# (-p:RouteKitGpuBundle=true; `routekit-perf onnx` is a CPU comparison run where the SDK is, and says so if the library is
# missing). Measured 2026-12-02 at commit be5db9a: 37,035,300 bytes (37.0 MB, 35.3 MiB) without ONNX Runtime's library;
# 2026-11-28: 39.2 MiB with it. The limit is DESIGN.md's "under 40 MB": 40,000,000 bytes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
dir="${BUNDLE_DIR:-$root/.gpu}"
rm -rf "$dir/app" "$dir/app.tar.xz"
mkdir -p "$dir/app"
for project in perf engine; do
  dotnet publish "$project" -c Release -r linux-x64 --self-contained \
    -p:PublishTrimmed=false -p:PublishReadyToRun=false -p:DebugType=none -p:GenerateDocumentationFile=false \
    -p:InvariantGlobalization=true -p:SatelliteResourceLanguages=en -p:RouteKitGpuBundle=true -o "$dir/app"
done
git rev-parse HEAD > "$dir/app/COMMIT" 2>/dev/null || echo unknown > "$dir/app/COMMIT"
ln -sf RouteKit.Engine "$dir/app/routekit"
ln -sf RouteKit.Perf "$dir/app/routekit-perf"
XZ_OPT=-9 tar cJf "$dir/app.tar.xz" -C "$dir" app
bytes=$(stat -c %s "$dir/app.tar.xz")
echo "$bytes bytes ($(awk -v b="$bytes" 'BEGIN { printf "%.1f MB, %.1f MiB", b / 1e6, b / 1048576 }')) $dir/app.tar.xz (commit $(cat "$dir/app/COMMIT"))"
# The GPU machine's transfer limit (DESIGN.md section 8, "under 40 MB"): fail loudly rather than ship a bundle that will
# not arrive.
[ "$bytes" -lt 40000000 ] || { echo "bundle is $bytes bytes, not under 40 MB (40,000,000 bytes)" >&2; exit 1; }
