"""FP8 probe: FLUX.1's GEMM shapes in bf16 (F.linear) vs FP8 e4m3 with row-wise scales (torch._scaled_mm),
with the activation quantisation's cost and the normalised error vs bf16; then one forward's GEMM sequence
back to back for a few seconds in each precision, to see the sustained rate (the power cap lowers the clock).
Study tool for scripts/bench: python3 fp8_probe.py [--seconds 4]"""
import argparse
import subprocess
import time

import torch
import torch.nn.functional as F

SHAPES = [  # name, m (tokens), n (out features), k (in features), count per FLUX.1-dev forward
    ("img qkv", 4096, 9216, 3072, 19), ("img out", 4096, 3072, 3072, 19), ("img mlp1", 4096, 12288, 3072, 19),
    ("img mlp2", 4096, 3072, 12288, 19), ("txt qkv", 512, 9216, 3072, 19), ("txt out", 512, 3072, 3072, 19),
    ("txt mlp1", 512, 12288, 3072, 19), ("txt mlp2", 512, 3072, 12288, 19), ("single qkv", 4608, 9216, 3072, 38),
    ("single mlp", 4608, 12288, 3072, 38), ("single out a", 4608, 3072, 3072, 38),
    ("single out m", 4608, 3072, 12288, 38),
]
E4M3_MAX = torch.finfo(torch.float8_e4m3fn).max


def quant_rows(t):
    """Row-wise e4m3: scale each row so its absmax maps to the format's max (the scale is kept in fp32)."""
    scale = t.abs().amax(dim=-1, keepdim=True).float().clamp(min=1e-12) / E4M3_MAX
    return (t.float() / scale).to(torch.float8_e4m3fn), scale


def timeit(fn, iters):
    fn()
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for _ in range(iters):
        fn()
    e1.record()
    torch.cuda.synchronize()
    return e0.elapsed_time(e1) / iters


def nerr(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm()).item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    torch.manual_seed(0)
    dev = "cuda"
    print(f"{'shape':13} {'bf16 ms':>8} {'fp8 ms':>8} {'+quant':>8} {'bf16 TF/s':>9} {'fp8 TF/s':>9} {'nerr':>8}")
    ops = []
    tot = {"bf16": 0.0, "fp8": 0.0, "fp8q": 0.0}
    for name, m, n, k, cnt in SHAPES:
        x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
        w = torch.randn(n, k, device=dev, dtype=torch.bfloat16) * k ** -0.5
        xq, xs = quant_rows(x)
        wq, ws = quant_rows(w)  # per output feature
        ref = x.double() @ w.double().t()
        fp8 = lambda: torch._scaled_mm(xq, wq.t(), scale_a=xs, scale_b=ws.t(), out_dtype=torch.bfloat16)
        tb = timeit(lambda: F.linear(x, w), args.iters)
        tf = timeit(fp8, args.iters)
        tq = timeit(lambda: quant_rows(x), args.iters)
        flop = 2 * m * n * k
        print(f"{name:13} {tb:8.4f} {tf:8.4f} {tq:8.4f} {flop / tb / 1e9:9.1f} {flop / tf / 1e9:9.1f} "
              f"{nerr(fp8(), ref):8.2e} (bf16 {nerr(F.linear(x, w), ref):.2e})")
        tot["bf16"] += tb * cnt
        tot["fp8"] += tf * cnt
        tot["fp8q"] += (tf + tq) * cnt
        ops.append((x, w, xq, xs, wq, ws, cnt))
    print(f"per forward: bf16 {tot['bf16']:.2f} ms, fp8 {tot['fp8']:.2f} ms, fp8 + composed quant {tot['fp8q']:.2f} ms")

    def seq(kind):
        for x, w, xq, xs, wq, ws, cnt in ops:
            for _ in range(cnt):
                if kind == "bf16":
                    F.linear(x, w)
                else:
                    torch._scaled_mm(xq, wq.t(), scale_a=xs, scale_b=ws.t(), out_dtype=torch.bfloat16)

    for kind in ("bf16", "fp8"):
        smi = subprocess.Popen(["nvidia-smi", "--query-gpu=clocks.sm,power.draw", "--format=csv,noheader,nounits",
                                "-lms", "200"], stdout=subprocess.PIPE, text=True)
        seq(kind)
        torch.cuda.synchronize()
        t0, n = time.time(), 0
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        while time.time() - t0 < args.seconds:
            seq(kind)
            n += 1
            torch.cuda.synchronize()
        e1.record()
        torch.cuda.synchronize()
        smi.terminate()
        lines = [l.split(",") for l in smi.communicate()[0].splitlines() if "," in l]
        clocks = sorted(float(a) for a, _ in lines) or [0]
        power = sorted(float(b) for _, b in lines) or [0]
        print(f"sustained {kind}: {e0.elapsed_time(e1) / n:.2f} ms per forward's GEMMs over {n} forwards; "
              f"SM clock median {clocks[len(clocks) // 2]:.0f} MHz (min {clocks[0]:.0f}), power median "
              f"{power[len(power) // 2]:.0f} W (max {power[-1]:.0f})")


if __name__ == "__main__":
    main()
