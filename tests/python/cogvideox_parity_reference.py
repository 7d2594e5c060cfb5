"""diffusers' CogVideoXPipeline on a tiny model directory, for tests/cogvideox_parity_model_test.cc.

Writes to --out: frames.u8 ([F, H, W, 3], the pipeline's PIL frames), latents.f32 (final latents),
steps.f32 (the latents after every step, from callback_on_step_end), embeds.f32 (prompt_embeds) and
meta.json (shapes, step count).
"""
import argparse
import json
import os

import numpy as np
import torch
from diffusers import CogVideoXPipeline


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--src", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--prompt", required=True)
    p.add_argument("--negative-prompt", default="")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--height", type=int, required=True)
    p.add_argument("--frames", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--guidance", type=float, default=6.0)
    p.add_argument("--dynamic-cfg", action="store_true")
    a = p.parse_args()

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    pipe = CogVideoXPipeline.from_pretrained(a.src, torch_dtype=torch.float32)
    steps = []

    def on_step(_pipe, _i, _t, kwargs):
        steps.append(kwargs["latents"].detach().float().clone())
        return kwargs

    with torch.no_grad():
        embeds, _ = pipe.encode_prompt(a.prompt, a.negative_prompt, do_classifier_free_guidance=False,
                                       max_sequence_length=226, device=torch.device("cpu"))
        out = pipe(prompt=a.prompt, negative_prompt=a.negative_prompt, height=a.height, width=a.width,
                   num_frames=a.frames, num_inference_steps=a.steps, guidance_scale=a.guidance,
                   use_dynamic_cfg=a.dynamic_cfg, generator=torch.Generator("cpu").manual_seed(a.seed),
                   output_type="pil", callback_on_step_end=on_step, callback_on_step_end_tensor_inputs=["latents"],
                   return_dict=True)
    frames = np.stack([np.asarray(im.convert("RGB"), dtype=np.uint8) for im in out.frames[0]])
    frames.tofile(os.path.join(a.out, "frames.u8"))
    steps[-1].numpy().astype(np.float32).tofile(os.path.join(a.out, "latents.f32"))
    torch.stack(steps).numpy().astype(np.float32).tofile(os.path.join(a.out, "steps.f32"))
    embeds.float().numpy().astype(np.float32).tofile(os.path.join(a.out, "embeds.f32"))
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump({"frames_shape": list(frames.shape), "latents_shape": list(steps[-1].shape),
                   "embeds_shape": list(embeds.shape), "steps": len(steps)}, f)


if __name__ == "__main__":
    main()
