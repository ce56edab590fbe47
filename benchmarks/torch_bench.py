"""PyTorch CPU side of Kiln's benchmark suite, driven by run.ts.

Usage: /usr/bin/python3 torch_bench.py --threads N --reps R case [case ...]
Prints one JSON object per case: {"case", "median_ms", "runs"}. Shapes mirror cases.ts.

With --serve, reads one case name per line on stdin, runs that case once (setting it up on first
use) and answers {"case", "ms"}: run.ts alternates Kiln and PyTorch runs this way, so both see the
same machine load on a shared machine.

Before serving, it multiplies two 1024x1024 matrices and checks the result against float64 (the
relative error of the whole product must stay below 1e-4), and answers one line describing the BLAS
it runs: {"ready", "check_ok", "max_rel_err", "blas_core", "pinned", "torch", "threads"}. run.ts
starts it with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed from this process's environment (so
OpenBLAS picks its own kernels for the CPU) and falls back to the pinned environment when the check
fails.
"""
import argparse
import ctypes
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def timed(fn, reps, warmup=1):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return ts


def gemm(n):
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    return lambda: a @ b


def conv(backward):
    x = torch.randn(2, 320, 32, 32, requires_grad=backward)
    w = torch.randn(320, 320, 3, 3, requires_grad=backward)
    g = torch.randn(2, 320, 32, 32)

    def run():
        if backward:
            x.grad = None
            w.grad = None
            y = F.conv2d(x, w, padding=1)
            y.backward(g)
        else:
            with torch.no_grad():
                F.conv2d(x, w, padding=1)

    return run


def sdpa(q, k, v):
    # torch < 2.0 (Debian's python3-torch is 1.13) has no fused SDPA: use the composite.
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v)
    s = (q @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
    return torch.softmax(s, dim=-1) @ v


def attention(L, backward):
    q, k, v = (torch.randn(1, 8, L, 64, requires_grad=backward) for _ in range(3))
    g = torch.randn(1, 8, L, 64)

    def run():
        if backward:
            for t in (q, k, v):
                t.grad = None
            y = sdpa(q, k, v)
            y.backward(g)
        else:
            with torch.no_grad():
                sdpa(q, k, v)

    return run


def groupnorm_silu():
    x = torch.randn(2, 320, 64, 64)
    w = torch.randn(320)
    b = torch.randn(320)

    def run():
        with torch.no_grad():
            F.silu(F.group_norm(x, 32, w, b, 1e-6))

    return run


def norm_fwd_bwd(shape, c, fn):
    x = torch.randn(*shape, requires_grad=True)
    w = torch.randn(c, requires_grad=True)
    b = torch.randn(c, requires_grad=True)
    g = torch.randn(*shape)

    def run():
        for t in (x, w, b):
            t.grad = None
        fn(x, w, b).backward(g)

    return run


def adamw(n):
    p = torch.nn.Parameter(torch.randn(n))
    p.grad = torch.randn(n)
    opt = torch.optim.AdamW([p], lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)
    return opt.step


CASES = {
    "gemm_512": lambda: gemm(512),
    "gemm_1024": lambda: gemm(1024),
    "gemm_2048": lambda: gemm(2048),
    "conv2d_3x3_fwd": lambda: conv(False),
    "conv2d_3x3_fwd_bwd": lambda: conv(True),
    "attention_1024_fwd_bwd": lambda: attention(1024, True),
    "attention_1024_fwd": lambda: attention(1024, False),
    "attention_4096_fwd": lambda: attention(4096, False),
    "groupnorm_silu": groupnorm_silu,
    "groupnorm_silu_fwd_bwd": lambda: norm_fwd_bwd((2, 320, 64, 64), 320, lambda x, w, b: F.silu(F.group_norm(x, 32, w, b, 1e-6))),
    "layernorm_fwd_bwd": lambda: norm_fwd_bwd((2, 4096, 320), 320, lambda x, w, b: F.layer_norm(x, (320,), w, b)),
    "adamw_100m": lambda: adamw(100_000_000),
}


def blas_core():
    """The OpenBLAS kernel set this process runs (e.g. 'SkylakeX', 'Haswell'), read from the loaded library."""
    try:
        with open("/proc/self/maps") as maps:
            libs = sorted({line.split()[-1] for line in maps if "openblas" in line and ".so" in line})
        for lib in libs:
            fn = getattr(ctypes.CDLL(lib), "openblas_get_corename", None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                return fn().decode()
    except OSError:
        pass
    return None


def check_sgemm():
    """sgemm against float64: returns (ok, max relative error over the whole product)."""
    g = torch.Generator().manual_seed(1)
    a = torch.randn(1024, 1024, generator=g)
    b = torch.randn(1024, 1024, generator=g)
    c = (a @ b).double()
    ref = a.double() @ b.double()
    err = ((c - ref).abs().max() / ref.abs().max()).item()
    return bool(err < 1e-4 and torch.isfinite(c).all().item()), err


def hello():
    ok, err = check_sgemm()
    pinned = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    info = {
        "ready": True,
        "check_ok": ok,
        "max_rel_err": err,
        "blas_core": blas_core(),
        "pinned": pinned,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "blas_config": torch.__config__.show(),
    }
    print(json.dumps(info))
    sys.stdout.flush()


def serve():
    hello()
    current = None
    fn = None
    for line in sys.stdin:
        name = line.strip()
        if not name:
            continue
        if name != current:
            fn = None  # free the previous case's tensors first
            fn = CASES[name]()
            current = name
        t0 = time.perf_counter()
        fn()
        ms = (time.perf_counter() - t0) * 1e3
        print(json.dumps({"case": name, "ms": ms, "torch": torch.__version__, "threads": torch.get_num_threads()}))
        sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("cases", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.serve:
        serve()
        return
    for name in args.cases or CASES:
        fn = CASES[name]()
        reps = max(3, args.reps // 2) if name in ("gemm_2048", "attention_4096_fwd", "adamw_100m") else args.reps
        ts = timed(fn, reps)
        print(json.dumps({"case": name, "median_ms": statistics.median(ts), "runs": ts, "torch": torch.__version__, "threads": torch.get_num_threads()}))
        sys.stdout.flush()
        del fn


if __name__ == "__main__":
    main()
