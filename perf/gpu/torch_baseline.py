#!/usr/bin/env python3
"""PyTorch baselines on the GPU machine, on the shapes RouteKit timed in the same run (perf/gpu/run.sh).

Attention: torch.nn.functional.scaled_dot_product_attention with each SDPA backend (math, efficient, flash) in float32
and float16, forward only, on every Dot, non-normalised shape in RouteKit's all-cuda.csv. Selective scan: Mamba's
recurrence (softplus delta, D, z gate) h_t = exp(dt A) h_{t-1} + dt B_t u_t, y_t = C_t h_t, as (1) a sequential loop
over t and (2) a chunked parallel version that does each chunk of 32 steps at once from torch.cumsum of the log decays
(Mamba-2's segment-sum form) and carries the state across chunks, on RouteKit's scan shapes.

Validate then time (llm.c): each SDPA backend is compared with the float64 math result (2x rule against float32 math
for float32, 2e-2 absolute for float16) and each scan against the float64 sequential loop before it is timed. Times are
CUDA-event medians after a warm-up. Writes torch.csv and gpu-table.md (RouteKit vs PyTorch ratios) under --out.
"""
import argparse
import csv
import math
import os
import re
import statistics
import sys

import torch
import torch.nn.functional as F

try:
    from torch.nn.attention import SDPBackend, sdpa_kernel
except ImportError:  # torch < 2.3
    SDPBackend = None


def cuda_time(fn, repeats=10):
    """Median and spread of fn() in ms, CUDA events around each call, after two warm-up calls."""
    fn()
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    med = statistics.median(times)
    return med, (max(times) - min(times)) / med


def sdpa_rows(shapes, rows):
    backends = {"math": SDPBackend.MATH, "efficient": SDPBackend.EFFICIENT_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION}
    for (b, h, n, m, d, causal) in shapes:
        gen = torch.Generator(device="cuda").manual_seed(1)
        q64 = torch.randn(b, h, n, d, device="cuda", dtype=torch.float64, generator=gen)
        k64 = torch.randn(b, h, m, d, device="cuda", dtype=torch.float64, generator=gen)
        v64 = torch.randn(b, h, m, d, device="cuda", dtype=torch.float64, generator=gen)
        with sdpa_kernel(SDPBackend.MATH):
            ref = F.scaled_dot_product_attention(q64, k64, v64, is_causal=causal)
            naive = F.scaled_dot_product_attention(q64.float(), k64.float(), v64.float(), is_causal=causal).double()
        naive_err = (naive - ref).abs().max().item()
        for dtype in (torch.float32, torch.float16):
            q, k, v = q64.to(dtype), k64.to(dtype), v64.to(dtype)
            flops = 4.0 * b * h * n * m * d * (0.5 if causal else 1.0)
            for name, backend in backends.items():
                row = dict(b=b, h=h, n=n, m=m, d=d, causal=causal, dtype=str(dtype).replace("torch.", ""), backend=name)
                try:
                    with sdpa_kernel(backend):
                        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                        err = (out.double() - ref).abs().max().item()
                        limit = 2 * naive_err + 1e-6 if dtype == torch.float32 else 2e-2
                        if not err <= limit:
                            row.update(status=f"FAILED validation: max err {err:.2e} > {limit:.2e}")
                            rows.append(row)
                            continue
                        ms, spread = cuda_time(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
                    row.update(status="ok", err=err, ms=ms, spread=spread, tflops=flops / ms / 1e9)
                except RuntimeError as e:
                    row.update(status="unsupported: " + str(e).splitlines()[0][:80])
                rows.append(row)
                print(row, flush=True)
        del q64, k64, v64, ref, naive
        torch.cuda.empty_cache()


def scan_problem(b, dc, l, nst, dtype):
    g = torch.Generator(device="cuda").manual_seed(l)
    r = lambda *s: torch.randn(*s, device="cuda", dtype=torch.float64, generator=g)
    u, delta, z = r(b, dc, l), r(b, dc, l) - 1, r(b, dc, l)
    a = -torch.exp(0.5 * r(dc, nst))
    bb, cc = r(b, nst, l), r(b, nst, l) / math.sqrt(nst)
    dd, bias = r(dc), 0.05 * r(dc)
    return [t.to(dtype) for t in (u, delta, a, bb, cc, dd, z, bias)]


def scan_sequential(u, delta, a, bb, cc, dd, z, bias):
    dt = F.softplus(delta + bias[None, :, None])                  # (B, Dc, L)
    h = torch.zeros(u.shape[0], u.shape[1], a.shape[1], device=u.device, dtype=u.dtype)
    ys = []
    for t in range(u.shape[2]):
        h = torch.exp(dt[:, :, t, None] * a) * h + (dt[:, :, t] * u[:, :, t])[:, :, None] * bb[:, None, :, t]
        ys.append((h * cc[:, None, :, t]).sum(-1))
    y = torch.stack(ys, -1) + dd[None, :, None] * u
    return y * F.silu(z)


def scan_chunked(u, delta, a, bb, cc, dd, z, bias, chunk=32):
    """Within a chunk every state is a decay-weighted sum of the chunk's inputs, computed at once from the cumsum of
    log decays: h_t = exp(la_t) h_0 + sum_{s <= t} exp(la_t - la_s) x_s, la = cumsum(dt A). The pairwise differences
    la_t - la_s <= 0 keep every exp in range (exp(-la_s) alone overflows float32 after ~20 steps of strong decay)."""
    dt = F.softplus(delta + bias[None, :, None])                  # (B, Dc, L)
    b_, dc, l = u.shape
    log_a = dt[..., None] * a[None, :, None, :]                   # (B, Dc, L, Nst), <= 0
    x = (dt * u)[..., None] * bb.transpose(1, 2)[:, None]         # (B, Dc, L, Nst)
    h = torch.zeros(b_, dc, a.shape[1], device=u.device, dtype=u.dtype)
    ys = []
    for s in range(0, l, chunk):
        la = torch.cumsum(log_a[:, :, s:s + chunk], 2)            # (B, Dc, c, Nst)
        c = la.shape[2]
        diff = la[:, :, :, None, :] - la[:, :, None, :, :]       # (B, Dc, t, s, Nst)
        causal = torch.ones(c, c, device=u.device, dtype=torch.bool).tril()[None, None, :, :, None]
        decay = torch.exp(diff.masked_fill(~causal, float("-inf")))
        hs = (decay * x[:, :, None, s:s + chunk]).sum(3) + torch.exp(la) * h[:, :, None]
        ys.append((hs * cc.transpose(1, 2)[:, None, s:s + chunk]).sum(-1))
        h = hs[:, :, -1]
    y = torch.cat(ys, -1) + dd[None, :, None] * u
    return y * F.silu(z)


def scan_rows(shapes, rows):
    for (b, dc, l, nst) in shapes:
        p64 = scan_problem(b, dc, min(l, 1024), nst, torch.float64)
        ref = scan_sequential(*p64)
        naive = scan_sequential(*[t.float() for t in p64]).double()
        naive_err = (naive - ref).abs().max().item()
        chunk_err = (scan_chunked(*[t.float() for t in p64]).double() - ref).abs().max().item()
        p = scan_problem(b, dc, l, nst, torch.float32)
        for name, fn in (("sequential", scan_sequential), ("chunked cumsum", scan_chunked)):
            err = naive_err if name == "sequential" else chunk_err
            row = dict(b=b, dc=dc, l=l, nst=nst, backend=name, err=err)
            if name != "sequential" and not err <= 2 * naive_err + 1e-5:
                row.update(status=f"FAILED validation at L={min(l, 1024)}: {err:.2e} > 2 x {naive_err:.2e}")
            else:
                ms, spread = cuda_time(lambda: fn(*p), repeats=3 if name == "sequential" else 10)
                row.update(status="ok", ms=ms, spread=spread)
            rows.append(row)
            print(row, flush=True)


def read_routekit(out):
    attention, scan = {}, {}
    path = os.path.join(out, "all-cuda.csv")
    if os.path.exists(path):
        for r in csv.DictReader(open(path)):
            if r["score"] == "Dot" and r["normalize"] == "False":
                key = (int(r["b"]), int(r["h"]), int(r["n"]), int(r["m"]), int(r["d"]), r["causal"] == "True")
                attention[key] = float(r["fwd_ms"])
    md = os.path.join(out, "all-cuda.md")
    if os.path.exists(md):
        text = open(md).read()
        m = re.search(r"# B = (\d+), Dc = (\d+), Nst = (\d+)", text)
        if m:
            b, dc, nst = map(int, m.groups())
            for line in text.splitlines():
                cells = [c.strip() for c in line.strip("|").split("|")]
                if len(cells) >= 4 and cells[0].isdigit():
                    scan[(b, dc, int(cells[0]), nst)] = (float(cells[1]), float(cells[3]))
    return attention, scan


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("torch_baseline: no CUDA device", file=sys.stderr)
        return 2
    if SDPBackend is None:
        print("torch_baseline: torch.nn.attention.sdpa_kernel needs torch >= 2.3", file=sys.stderr)
        return 2
    attention, scan = read_routekit(args.out)
    att_shapes = sorted(attention) or [(1, 8, n, n, 64, c) for n in (1024, 4096, 8192) for c in (False, True)]
    scan_shapes = sorted(scan) or [(2, 1024, l, 16) for l in (512, 2048, 8192)]
    rows, srows = [], []
    sdpa_rows(att_shapes, rows)
    scan_rows(scan_shapes, srows)
    keys = ["b", "h", "n", "m", "d", "causal", "dtype", "backend", "status", "err", "ms", "spread", "tflops"]
    with open(os.path.join(args.out, "torch.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, keys + ["dc", "l", "nst"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows + srows)

    dev = torch.cuda.get_device_name(0)
    lines = [f"# RouteKit vs PyTorch {torch.__version__} on {dev}", "",
             "Forward attention, ms (median, CUDA events / ILGPU profiling markers). Ratio = PyTorch ms / RouteKit ms "
             "(> 1: RouteKit is faster). RouteKit is float32 throughout.", "",
             "| shape | RouteKit f32 ms | " + " | ".join(f"{b} {t} ms (ratio)" for t in ("f32", "f16") for b in ("math", "efficient", "flash")) + " |",
             "|---|---:|" + "---:|" * 6]
    for key in att_shapes:
        b, h, n, m, d, causal = key
        rk = attention.get(key)
        cells = []
        for dtype in ("float32", "float16"):
            for backend in ("math", "efficient", "flash"):
                r = next((x for x in rows if (x["b"], x["h"], x["n"], x["m"], x["d"], x["causal"], x["dtype"], x["backend"]) == (*key, dtype, backend)), None)
                if r is None or r["status"] != "ok":
                    cells.append("n/a" if r is None else r["status"].split(":")[0])
                else:
                    cells.append(f"{r['ms']:.3f} ({r['ms'] / rk:.2f}x)" if rk else f"{r['ms']:.3f}")
        lines.append(f"| B{b} H{h} N{n} M{m} D{d}{' causal' if causal else ''} | {rk:.3f} | " if rk else f"| B{b} H{h} N{n} M{m} D{d}{' causal' if causal else ''} | n/a | ")
        lines[-1] += " | ".join(cells) + " |"
    lines += ["", "Selective scan (B, Dc, L, Nst), forward ms. Ratio = PyTorch ms / RouteKit ms.", "",
              "| shape | RouteKit ms | sequential ms (ratio) | chunked cumsum ms (ratio) |", "|---|---:|---:|---:|"]
    for key in scan_shapes:
        rk = scan.get(key, (None,))[0]
        cells = []
        for name in ("sequential", "chunked cumsum"):
            r = next((x for x in srows if (x["b"], x["dc"], x["l"], x["nst"], x["backend"]) == (*key, name)), None)
            cells.append("n/a" if r is None or r["status"] != "ok" else (f"{r['ms']:.3f} ({r['ms'] / rk:.2f}x)" if rk else f"{r['ms']:.3f}"))
        lines.append(f"| {key} | {rk if rk is not None else 'n/a'} | " + " | ".join(cells) + " |")
    with open(os.path.join(args.out, "gpu-table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    failed = [r for r in rows + srows if r["status"].startswith("FAILED")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
