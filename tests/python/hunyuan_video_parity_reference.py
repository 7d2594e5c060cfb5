#!/usr/bin/env python3
"""diffusers HunyuanVideoPipeline reference output for tests/hunyuan_video_parity_model_test.cc.

  hunyuan_video_parity_reference.py --src DIR --model DIR --out DIR --prompt P [--negative-prompt N] --seed S
                                    --width W --height H --frames F --steps N --guidance G [--true-cfg C]

Runs HunyuanVideoPipeline (float32, CPU) from the diffusers checkpoint directory --src with the prompt template,
crop_start and VAE tiling of the exported --model's model.json (what the C++ side uses) and
generator=torch.Generator("cpu").manual_seed(seed); writes to --out:
  frames.u8    the PIL frames as raw uint8, F x H x W x 3
  steps.f32    the latents after each step (float32), concatenated: [steps, 1, C, f, h, w]
  embeds.f32   Llama hidden_states[-3] after the crop; mask.f32 its attention mask; pooled.f32 CLIP's pooled output
  meta.json    {"frames", "width", "height", "latents_shape", "steps", "embeds_shape", "mask_shape", "pooled_shape",
                "cache_decisions" (with --fbcache-threshold: per step, true = skipped), "cache_diffs"}
"""
import argparse
import json
import os

import numpy as np
import torch
from diffusers import HunyuanVideoPipeline


def install_first_block_cache(model, threshold: float, warmup: int, max_skips: int, state: dict) -> None:
    """Replaces model.forward with the First Block Cache rule (engine/runtime/first_block_cache.h, as
    flux_parity_reference.py states it for FLUX) on diffusers 0.34's HunyuanVideoTransformer3DModel blocks: the
    first dual-stream block's video residual decides; a skipped step adds the cached residuals of the remaining
    blocks to both streams."""
    from diffusers.models.modeling_outputs import Transformer2DModelOutput

    state.update(step=0, prev=None, res=None, consecutive=0, decisions=[], diffs=[])

    def forward(hidden_states, timestep, encoder_hidden_states, encoder_attention_mask, pooled_projections,
                guidance=None, attention_kwargs=None, return_dict=True):
        m = model
        b, _, f, h, w = hidden_states.shape
        p = m.config.patch_size
        rope = m.rope(hidden_states)
        temb, _ = m.time_text_embed(timestep, pooled_projections, guidance)
        hs = m.x_embedder(hidden_states)
        ehs = m.context_embedder(encoder_hidden_states, timestep, encoder_attention_mask)
        n = hs.shape[1] + ehs.shape[1]
        valid = hs.shape[1] + encoder_attention_mask.sum(dim=1, dtype=torch.int)
        mask = (torch.arange(n)[None] < valid[:, None])[:, None, None, :]
        h_in = hs
        hs, ehs = m.transformer_blocks[0](hs, ehs, temb, mask, rope)
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
            for block in list(m.transformer_blocks[1:]) + list(m.single_transformer_blocks):
                hs, ehs = block(hs, ehs, temb, mask, rope)
            state["res"] = (hs - h1, ehs - e1)
        state["decisions"].append(skip)
        state["step"] += 1
        out = m.proj_out(m.norm_out(hs, temb))
        out = out.reshape(b, f, h // p, w // p, -1, 1, p, p).permute(0, 4, 1, 5, 2, 6, 3, 7)
        out = out.flatten(6, 7).flatten(4, 5).flatten(2, 3)
        return Transformer2DModelOutput(sample=out) if return_dict else (out,)

    model.forward = forward


def main() -> int:
    p = argparse.ArgumentParser()
    for name in ("--src", "--model", "--out", "--prompt"):
        p.add_argument(name, required=True)
    p.add_argument("--negative-prompt", default="")
    for name in ("--seed", "--width", "--height", "--frames", "--steps"):
        p.add_argument(name, type=int, required=True)
    p.add_argument("--guidance", type=float, required=True)
    p.add_argument("--true-cfg", type=float, default=1.0)
    p.add_argument("--fbcache-threshold", type=float, default=0.0)
    p.add_argument("--fbcache-warmup", type=int, default=1)
    p.add_argument("--fbcache-max-skips", type=int, default=0)
    a = p.parse_args()

    with open(os.path.join(a.model, "model.json")) as f:
        manifest = json.load(f)
    te = manifest["text_encoder"]
    tiling = dict(manifest["vae"]["tiling"])
    template = {"template": te["template"], "crop_start": te["crop_start"]}

    torch.set_grad_enabled(False)
    pipe = HunyuanVideoPipeline.from_pretrained(a.src, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    if tiling.pop("enabled"):  # the export decodes as vae.enable_tiling(<its tile sizes>)
        pipe.vae.enable_tiling(**tiling)
    embeds, pooled, mask = pipe.encode_prompt(prompt=a.prompt, prompt_template=template,
                                              max_sequence_length=te["max_sequence_length"])
    steps = []
    cache = {}
    if a.fbcache_threshold > 0:
        if a.true_cfg > 1:
            raise SystemExit("the FBCache reference decides per transformer call: use it without true CFG")
        install_first_block_cache(pipe.transformer, a.fbcache_threshold, a.fbcache_warmup, a.fbcache_max_skips,
                                  cache)

    def on_step_end(pipeline, i, t, kwargs):
        steps.append(kwargs["latents"].detach().to(torch.float32).clone())
        return kwargs

    result = pipe(prompt=a.prompt, negative_prompt=a.negative_prompt or None, true_cfg_scale=a.true_cfg,
                  width=a.width, height=a.height, num_frames=a.frames, num_inference_steps=a.steps,
                  guidance_scale=a.guidance, prompt_template=template,
                  max_sequence_length=te["max_sequence_length"],
                  generator=torch.Generator("cpu").manual_seed(a.seed), callback_on_step_end=on_step_end,
                  output_type="pil")
    frames = np.stack([np.asarray(im.convert("RGB"), dtype=np.uint8) for im in result.frames[0]])

    def write(name, t):
        np.ascontiguousarray(np.asarray(t, dtype="<f4")).tofile(os.path.join(a.out, name))

    os.makedirs(a.out, exist_ok=True)
    frames.tofile(os.path.join(a.out, "frames.u8"))
    write("steps.f32", torch.stack(steps).numpy())
    write("embeds.f32", embeds.float().numpy())
    write("mask.f32", mask.float().numpy())
    write("pooled.f32", pooled.float().numpy())
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump({"frames": int(frames.shape[0]), "height": int(frames.shape[1]), "width": int(frames.shape[2]),
                   "latents_shape": list(steps[-1].shape), "steps": len(steps),
                   "embeds_shape": list(embeds.shape), "mask_shape": list(mask.shape),
                   "pooled_shape": list(pooled.shape), "cache_decisions": cache.get("decisions", []),
                   "cache_diffs": cache.get("diffs", [])}, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
