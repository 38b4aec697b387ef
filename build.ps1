#!/usr/bin/env pwsh
# RouteKit build script. On Linux: `dotnet tool restore; dotnet pwsh build.ps1 <target>`.
#   build       Release build of Engine.sln
#   test        dotnet test -c Release (the command .ci/run and the README use)
#   bench       Managed attention benchmark (validates, then times; writes a table under perf/results/)
#   reproduce   dotnet run -c Release --project engine -- reproduce
#   gpu-bundle  perf/gpu/bundle.sh: self-contained linux-x64 apps in .gpu/app.tar.xz for a GPU machine without .NET
param(
    [Parameter(Position = 0)]
    [ValidateSet('build', 'test', 'bench', 'reproduce', 'gpu-bundle')]
    [string] $Target = 'build'
)
$ErrorActionPreference = 'Stop'
Set-Location $PSScriptRoot

function Invoke-Step([string] $exe, [string[]] $arguments) {
    Write-Host "> $exe $($arguments -join ' ')"
    & $exe @arguments
    if ($LASTEXITCODE -ne 0) { throw "'$exe $($arguments -join ' ')' failed with exit code $LASTEXITCODE" }
}

switch ($Target) {
    'build'      { Invoke-Step dotnet @('build', 'Engine.sln', '-c', 'Release') }
    'test'       { Invoke-Step dotnet @('test', '-c', 'Release') }
    'bench'      { Invoke-Step dotnet @('run', '-c', 'Release', '--project', 'perf', '--', 'attention-managed') }
    'reproduce'  { Invoke-Step dotnet @('run', '-c', 'Release', '--project', 'engine', '--', 'reproduce') }
    'gpu-bundle' { Invoke-Step bash @('perf/gpu/bundle.sh') }
}
