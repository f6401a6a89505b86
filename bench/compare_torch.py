#!/usr/bin/env python3
"""PyTorch side-by-side anchor for attn-bench.

Times torch.nn.functional.scaled_dot_product_attention on the CPU (or, with
--device cuda, on an NVIDIA GPU: the anchor for the OpenCL and Vulkan
backends) for the shapes given, with the FLOP convention attn-bench uses (4*B*Hq*Sq*Sk*D,
halved for causal when Sq == Sk), and prints one JSON object per line.

    python3 bench/compare_torch.py --threads 16 --shape 1,32,32,4096,128 --causal --dtype bf16

With --decode L (repeatable), each shape B,Hq,Hkv,S,D is instead one query
token per sequence against L cached keys (S is ignored), reported as GB/s of
K/V read (B*L*Hkv*D*2*element size / median time), as decode-bench does.
With --cold-mib N, an untimed write of an N MiB buffer on the device precedes
every timed call, as decode-bench's default cold mode does (evicting the
cache's lines from the caches and its pages from the TLBs); without it the
calls run back to back on warm caches.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

DEVICE = "cpu"
FLUSH = None   # the --cold-mib buffer


def evict():
    if FLUSH is not None:
        FLUSH.add_(1)


def sync():
    if DEVICE != "cpu":
        torch.cuda.synchronize()


def median_time(fn, reps, min_time, cap):
    """Median wall time of fn() after one warm-up call, device work included."""
    fn()
    sync()
    times = []
    start = time.perf_counter()
    while len(times) < reps or (time.perf_counter() - start < min_time and len(times) < cap):
        evict()
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(b, hq, hkv, s, d, causal, dtype, reps, min_time):
    g = torch.Generator().manual_seed(1)
    q = torch.randn(b, hq, s, d, generator=g).to(DEVICE, dtype)
    k = torch.randn(b, hkv, s, d, generator=g).to(DEVICE, dtype)
    v = torch.randn(b, hkv, s, d, generator=g).to(DEVICE, dtype)
    kw = {"is_causal": causal}
    if hkv != hq:
        kw["enable_gqa"] = True
    med = median_time(lambda: F.scaled_dot_product_attention(q, k, v, **kw), reps, min_time, 100)
    flops = 4.0 * b * hq * s * s * d * (0.5 if causal else 1.0)
    return {"impl": "torch", "torch": torch.__version__, "device": DEVICE,
            "threads": torch.get_num_threads(),
            "b": b, "hq": hq, "hkv": hkv, "s": s, "d": d, "causal": causal,
            "dtype": str(dtype).replace("torch.", ""), "median_ms": med * 1e3,
            "gflops": flops / med / 1e9}


def run_decode(b, hq, hkv, length, d, dtype, reps, min_time):
    g = torch.Generator().manual_seed(1)
    q = torch.randn(b, hq, 1, d, generator=g).to(DEVICE, dtype)
    k = torch.randn(b, hkv, length, d, generator=g).to(DEVICE, dtype)
    v = torch.randn(b, hkv, length, d, generator=g).to(DEVICE, dtype)
    kw = {"enable_gqa": True} if hkv != hq else {}
    med = median_time(lambda: F.scaled_dot_product_attention(q, k, v, **kw), reps, min_time, 200)
    nbytes = 2.0 * b * length * hkv * d * k.element_size()
    return {"impl": "torch", "op": "decode", "torch": torch.__version__, "device": DEVICE,
            "threads": torch.get_num_threads(), "b": b, "hq": hq, "hkv": hkv, "L": length,
            "d": d, "dtype": str(dtype).replace("torch.", ""), "median_ms": med * 1e3,
            "gbps": nbytes / med / 1e9}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--shape", action="append", required=True, help="B,Hq,Hkv,S,D")
    ap.add_argument("--causal", action="store_true")
    ap.add_argument("--dtype", action="append", choices=["f32", "bf16", "f16"])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--decode", type=int, action="append", metavar="L")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--cold-mib", type=int, default=0, metavar="N")
    a = ap.parse_args()
    global DEVICE, FLUSH
    DEVICE = a.device
    if a.cold_mib > 0:
        FLUSH = torch.zeros(a.cold_mib * 262144, dtype=torch.float32, device=DEVICE)
    if a.threads:
        torch.set_num_threads(a.threads)
    dtypes = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
    for shape in a.shape:
        b, hq, hkv, s, d = (int(x) for x in shape.split(","))
        for dt in a.dtype or ["f32"]:
            if a.decode:
                for length in a.decode:
                    print(json.dumps(run_decode(b, hq, hkv, length, d, dtypes[dt], a.reps,
                                                a.min_time)), flush=True)
            else:
                print(json.dumps(run(b, hq, hkv, s, d, a.causal, dtypes[dt], a.reps, a.min_time)),
                      flush=True)


if __name__ == "__main__":
    main()
