#!/usr/bin/env bash
# Publishes routekit-perf (perf/) and routekit (engine/) self-contained for linux-x64 into .gpu/app and packs them as
# .gpu/app.tar.xz, for a GPU machine that has no .NET SDK (DESIGN.md section 8). Run from anywhere.
# BUNDLE_DIR=folder puts app/ and app.tar.xz there instead of .gpu/ (the bundle test uses a temporary folder).
# Size: no ReadyToRun images (JIT at start costs seconds, R2R doubles the managed DLLs), no pdbs, no XML docs, invariant
# globalization (no ICU data), English-only satellite resources, and no ONNX Runtime native library
# (-p:RouteKitGpuBundle=true; `routekit-perf onnx` is a CPU comparison run where the SDK is, and says so if the library is
# missing). Measured 2026-11-28: 39.2 MiB with ONNX Runtime's library, about 31 MiB without.
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
echo "$((bytes / 1048576)) MiB ($bytes bytes) $dir/app.tar.xz (commit $(cat "$dir/app/COMMIT"))"
# The GPU machine's transfer limit (DESIGN.md section 8): fail loudly rather than ship a bundle that will not arrive.
[ "$bytes" -lt $((40 * 1048576)) ] || { echo "bundle is over 40 MiB" >&2; exit 1; }
