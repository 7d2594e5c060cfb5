#!/usr/bin/env python3
"""diffusers MochiPipeline reference output for tests/mochi_parity_model_test.cc.

  mochi_parity_reference.py --src DIR --out DIR --prompt P [--negative-prompt N] --seed S --width W
                            --height H --frames F --steps N --guidance G

Runs MochiPipeline (float32, CPU) from a diffusers checkpoint directory with
generator=torch.Generator("cpu").manual_seed(seed) and writes to --out:
  video.u8       the frames as raw uint8, F x H x W x 3 (output_type="np", then round(x * 255) as numpy_to_pil)
  latents.f32    the latents after the last step [1, 12, T, h, w] (float32, little endian, as all .f32)
  steps.f32      the latents after each step, concatenated: [steps, *latents_shape]
  embeds.f32 / mask.f32            pipe.encode_prompt's prompt embeddings and mask (0/1) for --prompt
  neg_embeds.f32 / neg_mask.f32    the same for the negative prompt (with guidance > 1)
  meta.json      {"frames", "width", "height", "latents_shape", "steps", "embeds_shape",
                  "cache_decisions" (with --fbcache-threshold: per step, true = skipped), "cache_diffs"}

With --fbcache-threshold T the transformer runs the First Block Cache rule (engine/runtime/first_block_cache.h:
after `warmup` steps, skip blocks 1.. when sum|r1 - prev| / sum|prev| over the batch (both CFG branches) is below
T; prev moves only on computed steps) built from diffusers' own Mochi modules: the reference for the C++ cache.
"""
import argparse
import json
import os

import numpy as np
import torch
from diffusers import MochiPipeline


def install_first_block_cache(model, threshold: float, warmup: int, state: dict) -> None:
    """Replaces model.forward (diffusers 0.34 MochiTransformer3DModel) with the FBCache rule on its own blocks."""
    from diffusers.models.modeling_outputs import Transformer2DModelOutput

    state.update(step=0, prev=None, res=None, decisions=[], diffs=[])

    def forward(hidden_states, encoder_hidden_states, timestep, encoder_attention_mask, attention_kwargs=None,
                return_dict=True):
        m = model
        b, _, t, h, w = hidden_states.shape
        p = m.config.patch_size
        temb, ehs = m.time_embed(timestep, encoder_hidden_states, encoder_attention_mask,
                                 hidden_dtype=hidden_states.dtype)
        hs = m.patch_embed(hidden_states.permute(0, 2, 1, 3, 4).flatten(0, 1)).unflatten(0, (b, -1)).flatten(1, 2)
        rope = m.rope(m.pos_frequencies, t, h // p, w // p, device=hs.device, dtype=torch.float32)
        h_in = hs
        hs, ehs = m.transformer_blocks[0](hs, ehs, temb, encoder_attention_mask, rope)
        r1 = hs - h_in
        skip = False
        if state["step"] >= warmup and state["prev"] is not None:
            prev = state["prev"]
            diff = ((r1.float() - prev.float()).abs().sum() / prev.float().abs().sum()).item()
            state["diffs"].append(diff)
            skip = diff < threshold
        else:
            state["diffs"].append(None)
        if skip:
            hs = hs + state["res"]
        else:
            state["prev"] = r1
            h1 = hs
            for block in m.transformer_blocks[1:]:
                hs, ehs = block(hs, ehs, temb, encoder_attention_mask, rope)
            state["res"] = hs - h1
        state["decisions"].append(skip)
        state["step"] += 1
        out = m.proj_out(m.norm_out(hs, temb))
        out = out.reshape(b, t, h // p, w // p, p, p, -1).permute(0, 6, 1, 2, 4, 3, 5).reshape(b, -1, t, h, w)
        return Transformer2DModelOutput(sample=out) if return_dict else (out,)

    model.forward = forward


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--src", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--prompt", required=True)
    p.add_argument("--negative-prompt", default="")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--height", type=int, required=True)
    p.add_argument("--frames", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--guidance", type=float, required=True)
    p.add_argument("--fbcache-threshold", type=float, default=0.0)
    p.add_argument("--fbcache-warmup", type=int, default=1)
    a = p.parse_args()

    torch.set_grad_enabled(False)
    pipe = MochiPipeline.from_pretrained(a.src, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    cfg = a.guidance > 1
    embeds, mask, neg_embeds, neg_mask = pipe.encode_prompt(prompt=a.prompt, negative_prompt=a.negative_prompt,
                                                            do_classifier_free_guidance=cfg)
    steps = []
    cache = {}
    if a.fbcache_threshold > 0:
        install_first_block_cache(pipe.transformer, a.fbcache_threshold, a.fbcache_warmup, cache)

    def on_step_end(pipeline, i, t, kwargs):
        steps.append(kwargs["latents"].detach().to(torch.float32).clone())
        return kwargs

    result = pipe(prompt=a.prompt, negative_prompt=a.negative_prompt, width=a.width, height=a.height,
                  num_frames=a.frames, num_inference_steps=a.steps, guidance_scale=a.guidance,
                  generator=torch.Generator("cpu").manual_seed(a.seed), callback_on_step_end=on_step_end,
                  output_type="np")
    video = (np.asarray(result.frames[0]) * 255).round().astype(np.uint8)  # [F, H, W, 3]

    def write(name, t):
        np.ascontiguousarray(np.asarray(t, dtype="<f4")).tofile(os.path.join(a.out, name))

    os.makedirs(a.out, exist_ok=True)
    video.tofile(os.path.join(a.out, "video.u8"))
    write("latents.f32", steps[-1].numpy())
    write("steps.f32", torch.stack(steps).numpy())
    write("embeds.f32", embeds.float().numpy())
    write("mask.f32", mask.float().numpy())
    if cfg:
        write("neg_embeds.f32", neg_embeds.float().numpy())
        write("neg_mask.f32", neg_mask.float().numpy())
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump({"frames": int(video.shape[0]), "height": int(video.shape[1]), "width": int(video.shape[2]),
                   "latents_shape": list(steps[-1].shape), "steps": len(steps),
                   "embeds_shape": list(embeds.shape), "cache_decisions": cache.get("decisions", []),
                   "cache_diffs": cache.get("diffs", [])}, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
