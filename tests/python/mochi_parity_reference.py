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
  meta.json      {"frames", "width", "height", "latents_shape", "steps", "embeds_shape"}
"""
import argparse
import json
import os

import numpy as np
import torch
from diffusers import MochiPipeline


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
    a = p.parse_args()

    torch.set_grad_enabled(False)
    pipe = MochiPipeline.from_pretrained(a.src, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    cfg = a.guidance > 1
    embeds, mask, neg_embeds, neg_mask = pipe.encode_prompt(prompt=a.prompt, negative_prompt=a.negative_prompt,
                                                            do_classifier_free_guidance=cfg)
    steps = []

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
                   "embeds_shape": list(embeds.shape)}, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
