#!/usr/bin/env bash
# Publishes routekit-perf (perf/) and routekit (engine/) self-contained for linux-x64 into .gpu/app and packs them as
# .gpu/app.tar.xz, for a GPU machine that has no .NET SDK (DESIGN.md section 8). Run from anywhere.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
rm -rf .gpu/app .gpu/app.tar.xz
mkdir -p .gpu/app
for project in perf engine; do
  dotnet publish "$project" -c Release -r linux-x64 --self-contained \
    -p:PublishTrimmed=false -p:DebugType=none -p:GenerateDocumentationFile=false -o .gpu/app
done
git rev-parse HEAD > .gpu/app/COMMIT 2>/dev/null || echo unknown > .gpu/app/COMMIT
ln -sf RouteKit.Engine .gpu/app/routekit
ln -sf RouteKit.Perf .gpu/app/routekit-perf
tar cJf .gpu/app.tar.xz -C .gpu app
echo "$(du -h .gpu/app.tar.xz | cut -f1) .gpu/app.tar.xz (commit $(cat .gpu/app/COMMIT))"
