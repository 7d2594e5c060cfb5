"""Reference schedules and steps from diffusers' CogVideoXDDIMScheduler / CogVideoXDPMScheduler, driven as
CogVideoXPipeline drives them (the DPM solver's noise from the generator that drew the latents).

Writes <out dir>/reference.json: {"cases": [{"class", "config", "steps", "seed", "shape", "timesteps", "alphas_cumprod"
(every 97th), "model_outputs" (per step, flattened), "latents" (initial), "prevs" (per step)}]}. Floats are
float32 values written as doubles. Used by tests/cogvideox_scheduler_test.cc.
"""
import json
import os
import sys

import torch
from diffusers import CogVideoXDDIMScheduler, CogVideoXDPMScheduler

# CogVideoX-2b's scheduler_config.json; 5b / 1.5 differ in snr_shift_scale (1.0).
BASE = {"beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False,
        "num_train_timesteps": 1000, "prediction_type": "v_prediction", "rescale_betas_zero_snr": True,
        "set_alpha_to_one": True, "snr_shift_scale": 3.0, "steps_offset": 0, "timestep_spacing": "trailing"}
SHAPE = [1, 3, 4, 2, 3]


def case(cls, config, steps, seed):
    sched = cls(**config)
    sched.set_timesteps(steps, device="cpu")
    gen = torch.Generator("cpu").manual_seed(seed)
    latents = torch.randn(SHAPE, generator=gen, dtype=torch.float32)
    sample = latents
    old = None
    outs, prevs = [], []
    for i, t in enumerate(sched.timesteps):
        # a deterministic stand-in for the transformer's output, varying per step
        model_output = torch.sin(sample * (1.0 + 0.1 * i) + 0.3).float()
        if cls is CogVideoXDPMScheduler:
            sample, old = sched.step(model_output, old, t, sched.timesteps[i - 1] if i > 0 else None, sample,
                                     generator=gen, return_dict=False)
        else:
            sample = sched.step(model_output, t, sample, generator=gen, return_dict=False)[0]
        outs.append(model_output.flatten().tolist())
        prevs.append(sample.flatten().tolist())
    return {"class": cls.__name__, "config": config, "steps": steps, "seed": seed, "shape": SHAPE,
            "timesteps": [int(x) for x in sched.timesteps.tolist()],
            "alphas_cumprod": [float(x) for x in sched.alphas_cumprod[::97].tolist()],
            "latents": latents.flatten().tolist(), "model_outputs": outs, "prevs": prevs}


cases = []
for cls in (CogVideoXDDIMScheduler, CogVideoXDPMScheduler):
    cases += [
        case(cls, BASE, 50, 0),
        case(cls, dict(BASE, snr_shift_scale=1.0), 7, 42),
        case(cls, BASE, 1, 3),
        case(cls, dict(BASE, timestep_spacing="leading", steps_offset=1, rescale_betas_zero_snr=False,
                       prediction_type="epsilon"), 6, 5),
        case(cls, dict(BASE, timestep_spacing="linspace", beta_schedule="linear", set_alpha_to_one=False), 9, 7),
        case(cls, dict(BASE, num_train_timesteps=1000), 33, 11),
    ]
with open(os.path.join(sys.argv[1], "reference.json"), "w") as f:
    json.dump({"cases": cases}, f)
