# Copied from the reference measurements in ../shared/anchors/flux_bench.py (the script that produced the
# competitor figures in issue 5), so ditserve and the references run in the same session on a GPU host.
# Reference measurement: diffusers FluxTransformer2DModel (FLUX.1-dev config, random bf16 weights),
# 1024x1024 (4096 image tokens + 512 text tokens), per-forward latency. Optional para_attn CP.
import os, sys, time, json, statistics
sys.path.insert(0, os.path.dirname(__file__))
import torch
import torch.distributed as dist
import diffusers.utils.import_utils as _iu
_iu._transformers_available = False  # transformers 5.x on the box is newer than diffusers 0.34 expects

mode = sys.argv[1] if len(sys.argv) > 1 else "single"   # single | ulysses | ring | compile
distributed = mode.split("_")[0] in ("ulysses", "ring")
if distributed:
    dist.init_process_group("nccl")
    rank = dist.get_rank(); torch.cuda.set_device(rank)
else:
    rank = 0
from diffusers import FluxTransformer2DModel
cfg = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
           num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
           axes_dims_rope=[16, 56, 56])
layers = int(os.environ.get("FLUX_LAYERS", "0"))
if layers:
    cfg["num_layers"] = layers; cfg["num_single_layers"] = 2 * layers
torch.manual_seed(0)
with torch.device("cuda"):
    model = FluxTransformer2DModel(**cfg).to(torch.bfloat16).eval()
dev = "cuda"
H = W = int(os.environ.get("RES", "1024"))
n_img = (H // 16) * (W // 16)
hs = torch.randn(1, n_img, 64, device=dev, dtype=torch.bfloat16)
ehs = torch.randn(1, 512, 4096, device=dev, dtype=torch.bfloat16)
pooled = torch.randn(1, 768, device=dev, dtype=torch.bfloat16)
t = torch.tensor([0.5], device=dev, dtype=torch.bfloat16)
g = torch.tensor([3.5], device=dev, dtype=torch.bfloat16)
img_ids = torch.zeros(H // 16, W // 16, 3, device=dev)
img_ids[..., 1] += torch.arange(H // 16, device=dev)[:, None]
img_ids[..., 2] += torch.arange(W // 16, device=dev)[None, :]
img_ids = img_ids.reshape(-1, 3)
txt_ids = torch.zeros(512, 3, device=dev)
if distributed:
    from para_attn.context_parallel import init_context_parallel_mesh
    from para_attn.context_parallel.diffusers_adapters.flux import parallelize_transformer
    kw = {"max_ring_dim_size": 2} if mode.startswith("ring") else {"max_ulysses_dim_size": 2}
    mesh = init_context_parallel_mesh("cuda", **kw)
    parallelize_transformer(model, mesh=mesh)
if mode.endswith("compile"):
    torch._inductor.config.reorder_for_compute_comm_overlap = True
    model = torch.compile(model)
def step():
    with torch.no_grad():
        return model(hidden_states=hs, encoder_hidden_states=ehs, pooled_projections=pooled, timestep=t,
                     img_ids=img_ids, txt_ids=txt_ids, guidance=g, return_dict=False)[0]
t0 = time.time()
for _ in range(3 if not mode.endswith("compile") else 2):
    out = step()
torch.cuda.synchronize()
warm = time.time() - t0
times = []
for _ in range(10):
    if distributed: dist.barrier()
    torch.cuda.synchronize(); a = time.perf_counter(); out = step(); torch.cuda.synchronize(); times.append(time.perf_counter() - a)
if rank == 0:
    print(json.dumps({"mode": mode, "res": H, "layers": [cfg["num_layers"], cfg["num_single_layers"]],
                      "median_s": statistics.median(times), "min_s": min(times), "warmup_s": round(warm, 1),
                      "out_shape": list(out.shape), "out_std": float(out.float().std()),
                      "max_mem_gb": torch.cuda.max_memory_allocated() / 2**30}), flush=True)
if distributed:
    dist.destroy_process_group()
