#!/usr/bin/env python3
"""cuDNN fused attention vs the memory layout of q, k, v at the video families' shapes (one H100/H200).

  attention_layout.py [--families cogvideox-5b,mochi,hunyuan-video] [--iters 10]

ditserve's exports write q/k as [B, S, H, D] rows (the fused norm+RoPE kernels) and take v as a column slice
of the stacked qkv GEMM; diffusers' processors leave q/k [B, H, S, D]-contiguous (its norms copy) and v a view.
Each layout is timed with the kernel ditserve calls (at::_scaled_dot_product_cudnn_attention) and with SDPA's
own choice, median of --iters synchronised calls, and the table gives each one's TFLOP/s (4 * B * H * Sq * Sk * D).
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

# name: (batch rows, heads, head_dim, query tokens, key tokens)
SHAPES = {
    "cogvideox-5b": (2, 48, 64, 17550 + 226, 17550 + 226),  # CFG batch, no mask
    "cogvideox-1.5": (2, 48, 64, 44880 + 226, 44880 + 226),
    "mochi": (1, 24, 128, 44520 + 256, 44520 + 24),  # one CFG row; compacted keys: video + a 24-token prompt
    "hunyuan-video": (1, 24, 128, 32640 + 256, 32640 + 24),
}


def layout(kind, b, h, d, s, dev, dtype):
    """A [B, H, S, D] view stored as `kind` says."""
    if kind == "bshd":
        return torch.randn(b, s, h, d, device=dev, dtype=dtype).transpose(1, 2)
    if kind == "bhsd":
        return torch.randn(b, h, s, d, device=dev, dtype=dtype)
    if kind == "qkv-slice":  # v as ditserve's stacked GEMM leaves it: [B, S, 3 * H * D], last third
        return torch.randn(b, s, 3 * h * d, device=dev, dtype=dtype)[:, :, 2 * h * d:].view(b, s, h, d).transpose(1, 2)
    raise ValueError(kind)


def median_ms(fn, iters):
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", default="cogvideox-5b,mochi,hunyuan-video")
    p.add_argument("--iters", type=int, default=10)
    a = p.parse_args()
    dev, dtype = torch.device("cuda"), torch.bfloat16
    torch.set_grad_enabled(False)
    # (q/k storage, v storage)
    cases = [("bshd", "qkv-slice"), ("bshd", "bshd"), ("bhsd", "qkv-slice"), ("bhsd", "bshd"), ("bhsd", "bhsd")]
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}")
    print(f"{'family':<14} {'q/k':<5} {'v':<9} {'cudnn ms':>9} {'TFLOP/s':>8} {'out':<5} {'sdpa ms':>8} {'TFLOP/s':>8}")
    for fam in a.families.split(","):
        b, h, d, sq, sk = SHAPES[fam]
        flop = 4.0 * b * h * sq * sk * d
        for qk_kind, v_kind in cases:
            torch.manual_seed(0)
            q = layout(qk_kind, b, h, d, sq, dev, dtype)
            k = layout(qk_kind, b, h, d, sk, dev, dtype)
            v = layout(v_kind, b, h, d, sk, dev, dtype)

            def cudnn():
                return torch.ops.aten._scaled_dot_product_cudnn_attention(q, k, v, None, False, 0.0, False, False)[0]

            out = cudnn()
            out_kind = "bhsd" if out.is_contiguous() else ("bshd" if out.transpose(1, 2).is_contiguous() else "other")
            ms = median_ms(cudnn, a.iters)
            sdpa_ms = median_ms(lambda: F.scaled_dot_product_attention(q, k, v), a.iters)
            print(f"{fam:<14} {qk_kind:<5} {v_kind:<9} {ms:9.2f} {flop / ms / 1e9:8.0f} {out_kind:<5} "
                  f"{sdpa_ms:8.2f} {flop / sdpa_ms / 1e9:8.0f}", flush=True)
            del q, k, v, out
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
