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
  meta.json    {"width", "height", "latents_shape", "steps", "pooled_shape", "t5_shape"}
"""
import argparse
import json
import os

import numpy as np
import torch
from diffusers import FluxPipeline


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
    a = p.parse_args()

    torch.set_grad_enabled(False)
    pipe = FluxPipeline.from_pretrained(a.src, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    # Same arguments the pipeline call below encodes with (prompt_2 defaults to prompt); draws no randomness.
    t5, pooled, _ = pipe.encode_prompt(prompt=a.prompt, prompt_2=None, max_sequence_length=a.max_sequence_length)
    steps = []

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
                   "pooled_shape": list(pooled.shape), "t5_shape": list(t5.shape)}, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
