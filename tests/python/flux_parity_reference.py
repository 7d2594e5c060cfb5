#!/usr/bin/env python3
"""diffusers FluxPipeline reference output for tests/flux_parity_model_test.cc.

  flux_parity_reference.py --src DIR --out DIR --prompt P [--negative-prompt N] --seed S --width W
                           --height H --steps N --guidance G [--true-cfg C]

Runs FluxPipeline (float32, CPU) from a diffusers checkpoint directory with
generator=torch.Generator("cpu").manual_seed(seed) and writes to --out:
  image.u8     the PIL output as raw uint8, H x W x 3
  latents.f32  the packed latents after the last step (float32, little endian, as all .f32)
  steps.f32    the packed latents after each step, concatenated: [steps, *latents_shape]
  pooled.f32   pipe.encode_prompt's CLIP pooled output for --prompt
  t5.f32       pipe.encode_prompt's T5 hidden states for --prompt
  meta.json    {"width", "height", "latents_shape", "steps", "pooled_shape", "t5_shape",
                "cache_decisions" (with --fbcache-threshold: per step, true = skipped), "cache_diffs"}

With --fbcache-threshold T the transformer runs the First Block Cache rule (ParaAttention's FBCache, as
engine/runtime/first_block_cache.h states it) built from diffusers' own blocks: the reference the C++
cache is compared with.
"""
import argparse
import json
import os

import numpy as np
import torch
from diffusers import FluxPipeline


def install_first_block_cache(model, threshold: float, warmup: int, max_skips: int, state: dict) -> None:
    """Replaces model.forward with the FBCache rule on diffusers 0.34's FluxTransformer2DModel blocks."""
    from diffusers.models.modeling_outputs import Transformer2DModelOutput

    state.update(step=0, prev=None, res=None, consecutive=0, decisions=[], diffs=[])

    def forward(hidden_states, encoder_hidden_states=None, pooled_projections=None, timestep=None, img_ids=None,
                txt_ids=None, guidance=None, joint_attention_kwargs=None, return_dict=True, **_):
        m = model
        hs = m.x_embedder(hidden_states)
        t = timestep.to(hs.dtype) * 1000
        if guidance is not None:
            temb = m.time_text_embed(t, guidance.to(hs.dtype) * 1000, pooled_projections)
        else:
            temb = m.time_text_embed(t, pooled_projections)
        ehs = m.context_embedder(encoder_hidden_states)
        rope = m.pos_embed(torch.cat((txt_ids, img_ids), dim=0))
        h_in = hs
        ehs, hs = m.transformer_blocks[0](hidden_states=hs, encoder_hidden_states=ehs, temb=temb,
                                          image_rotary_emb=rope)
        r1 = hs - h_in
        skip = False
        if state["step"] >= warmup and state["prev"] is not None:
            prev = state["prev"]
            diff = ((r1.float() - prev.float()).abs().sum() / prev.float().abs().sum()).item()
            state["diffs"].append(diff)
            capped = max_skips > 0 and state["consecutive"] >= max_skips
            skip = diff < threshold and not capped
        else:
            state["diffs"].append(None)
        if skip:
            hs = hs + state["res"][0]
            ehs = ehs + state["res"][1]
            state["consecutive"] += 1
        else:
            state["prev"] = r1
            state["consecutive"] = 0
            h1, e1 = hs, ehs
            for block in m.transformer_blocks[1:]:
                ehs, hs = block(hidden_states=hs, encoder_hidden_states=ehs, temb=temb, image_rotary_emb=rope)
            text_len = ehs.shape[1]
            x = torch.cat([ehs, hs], dim=1)
            for block in m.single_transformer_blocks:
                x = block(hidden_states=x, temb=temb, image_rotary_emb=rope)
            ehs, hs = x[:, :text_len], x[:, text_len:]
            state["res"] = (hs - h1, ehs - e1)
        state["decisions"].append(skip)
        state["step"] += 1
        out = m.proj_out(m.norm_out(hs, temb))
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
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--guidance", type=float, required=True)
    p.add_argument("--true-cfg", type=float, default=1.0)
    p.add_argument("--max-sequence-length", type=int, default=512)
    p.add_argument("--fbcache-threshold", type=float, default=0.0)
    p.add_argument("--fbcache-warmup", type=int, default=1)
    p.add_argument("--fbcache-max-skips", type=int, default=0)
    a = p.parse_args()

    torch.set_grad_enabled(False)
    pipe = FluxPipeline.from_pretrained(a.src, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    # Same arguments the pipeline call below encodes with (prompt_2 defaults to prompt); draws no randomness.
    t5, pooled, _ = pipe.encode_prompt(prompt=a.prompt, prompt_2=None, max_sequence_length=a.max_sequence_length)
    steps = []
    cache = {}
    if a.fbcache_threshold > 0:
        if a.true_cfg > 1:
            raise SystemExit("the FBCache reference decides per transformer call: use it without true CFG")
        install_first_block_cache(pipe.transformer, a.fbcache_threshold, a.fbcache_warmup, a.fbcache_max_skips, cache)

    def on_step_end(pipeline, i, t, kwargs):
        steps.append(kwargs["latents"].detach().to(torch.float32).clone())
        return kwargs

    result = pipe(
        prompt=a.prompt,
        negative_prompt=a.negative_prompt or None,
        true_cfg_scale=a.true_cfg,
        width=a.width,
        height=a.height,
        num_inference_steps=a.steps,
        guidance_scale=a.guidance,
        generator=torch.Generator("cpu").manual_seed(a.seed),
        max_sequence_length=a.max_sequence_length,
        callback_on_step_end=on_step_end,
        output_type="pil",
    )
    image = np.asarray(result.images[0].convert("RGB"), dtype=np.uint8)
    latents = steps[-1].contiguous().numpy()

    def write(name, t):
        np.ascontiguousarray(np.asarray(t, dtype="<f4")).tofile(os.path.join(a.out, name))

    os.makedirs(a.out, exist_ok=True)
    image.tofile(os.path.join(a.out, "image.u8"))
    write("latents.f32", latents)
    write("steps.f32", torch.stack(steps).numpy())
    write("pooled.f32", pooled.to(torch.float32).numpy())
    write("t5.f32", t5.to(torch.float32).numpy())
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump({"width": int(image.shape[1]), "height": int(image.shape[0]),
                   "latents_shape": list(latents.shape), "steps": len(steps),
                   "pooled_shape": list(pooled.shape), "t5_shape": list(t5.shape),
                   "cache_decisions": cache.get("decisions", []), "cache_diffs": cache.get("diffs", [])}, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
