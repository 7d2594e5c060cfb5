"""Probe ditserve's FP8 attention op shape by shape in Python, each case in its own process, so that a crash names
its case (the in-process benches crashed in FP8 attention where the C++ GPU test did not; docs/benchmarks.md).

    python3 scripts/debug/fp8_attention_probe.py BUILD/engine/libditserve_runtime.so [CASE...]

Only calls with at least 8192² scores reach the fused kernel (Fp8AttentionPays); the smaller cases check that
they stay bf16. Prints, per case, the exit status and the output's relative error against torch's SDPA (bf16). With
LD_PRELOAD of scripts/debug/segv_backtrace.c's library, a crash prints its C frames.
"""
import subprocess, sys, torch
CASES = {
  "bhsd4096": "q=r(1,24,4096,128);k=r(1,24,4096,128);v=r(1,24,4096,128);m=None",
  "bshd4096": "q=b(1,24,4096);k=b(1,24,4096);v=b(1,24,4096);m=None",
  "refiner256_mask40": "q=r(1,24,256,128);k=r(1,24,256,128);v=r(1,24,256,128);m=mask(256,40)",
  "video4352_mask": "q=b(1,24,4352);k=b(1,24,4352);v=b(1,24,4352);m=mask(4352,4096+40)",
  "qkv_slice_mask": "x=torch.randn(1,4352,3,24,128,device='cuda',dtype=torch.bfloat16);q,k,v=[x[:,:,i].transpose(1,2) for i in range(3)];m=mask(4352,4096+40)",
  "mid8448_nomask": "q=b(1,24,8448);k=b(1,24,8448);v=b(1,24,8448);m=None",
  "mid8448_mask": "q=b(1,24,8448);k=b(1,24,8448);v=b(1,24,8448);m=mask(8448,8192+40)",
  "hy_full_mask": "q=b(1,24,32896);k=b(1,24,32896);v=b(1,24,32896);m=mask(32896,32640+40)",
  "hy_full_nomask": "q=b(1,24,32896);k=b(1,24,32896);v=b(1,24,32896);m=None",
  "hy_sq_ne_sk": "q=b(1,24,32896);k=b(1,24,32680);v=b(1,24,32680);m=None",
  "hy_narrow": "q=b(1,24,32896);k=b(1,24,32896)[:,:,:32680];v=b(1,24,32896)[:,:,:32680];m=None",
  "batch2_mask": "q=b(2,24,4352);k=b(2,24,4352);v=b(2,24,4352);m=torch.cat([mask(4352,4100),mask(4352,4200)])",
  "fp16": "q=r(1,24,1024,128).half();k=r(1,24,1024,128).half();v=r(1,24,1024,128).half();m=None",
  "head64": "q=r(1,24,1024,64);k=r(1,24,1024,64);v=r(1,24,1024,64);m=None",
  "zero_q": "q=torch.zeros(1,24,1024,128,device='cuda',dtype=torch.bfloat16);k=r(1,24,1024,128);v=r(1,24,1024,128);m=None",
  "no_grad_jit": "q=r(1,24,1024,128);k=r(1,24,1024,128);v=r(1,24,1024,128);m=None;torch.set_grad_enabled(False)",
}
PRE = """
import torch,sys
torch.ops.load_library(sys.argv[1]); torch.ops.ditserve.set_fp8_attention(True)
r=lambda *s: torch.randn(*s,device='cuda',dtype=torch.bfloat16)
b=lambda B,H,S: torch.randn(B,S,H,128,device='cuda',dtype=torch.bfloat16).transpose(1,2)
def mask(s,n):
    m=torch.zeros(1,s,dtype=torch.bool,device='cuda'); m[:,:n]=True; return m
torch.zeros(1, device='cuda')
libs = sorted({l.split()[-1] for l in open('/proc/self/maps') if 'cudnn' in l or 'nvrtc' in l})
print('cudnn', torch.backends.cudnn.version(), 'mapped:', ' '.join(libs), flush=True)
"""
POST = """
o=torch.ops.ditserve.attention(q,k,v,m); torch.cuda.synchronize()
ref=torch.nn.functional.scaled_dot_product_attention(q,k,v,None if m is None else m[:,None,None,:])
print('ok', tuple(o.shape), o.dtype, 'rel err %.2e' % ((o.float()-ref.float()).norm()/ref.float().norm()).item(), flush=True)
"""
only = sys.argv[2:]
for name, body in CASES.items():
    if only and name not in only:
        continue
    p = subprocess.run([sys.executable, "-X", "faulthandler", "-c", PRE + body + POST, sys.argv[1]],
                       capture_output=True, text=True, timeout=120)
    print(f"== {name}: rc {p.returncode}: {p.stdout.strip()} {p.stderr.strip()[-4000:] if p.returncode else ''}", flush=True)
