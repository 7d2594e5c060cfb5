"""Reference sigmas/timesteps from diffusers' FlowMatchEulerDiscreteScheduler, as FluxPipeline (and
HunyuanVideoPipeline: linear_sigmas; MochiPipeline: linear_quadratic_schedule with invert_sigmas) sets them.

Prints one JSON object: {"cases": [{"name", "config", "steps", "image_seq_len", "mu", "sigmas", "timesteps",
"step": {"sample", "model_output", "prev"}}]}. Float values are exact float32 values written as doubles.
Used by tests/scheduler_test.cc.
"""
import json

import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.pipelines.flux.pipeline_flux import calculate_shift, retrieve_timesteps

DEV = {  # FLUX.1-dev scheduler_config.json
    "base_image_seq_len": 256, "base_shift": 0.5, "max_image_seq_len": 4096, "max_shift": 1.15,
    "num_train_timesteps": 1000, "shift": 3.0, "use_dynamic_shifting": True,
}
SCHNELL = {  # FLUX.1-schnell scheduler_config.json
    "base_image_seq_len": 256, "base_shift": 0.5, "max_image_seq_len": 4096, "max_shift": 1.15,
    "num_train_timesteps": 1000, "shift": 1.0, "use_dynamic_shifting": False,
}
STATIC = dict(SCHNELL, shift=3.0)
HUNYUAN = {"num_train_timesteps": 1000, "shift": 7.0, "use_dynamic_shifting": False}  # HunyuanVideo's
MOCHI = {  # genmo/mochi-1-preview scheduler_config.json
    "base_image_seq_len": 256, "base_shift": 0.5, "invert_sigmas": True, "max_image_seq_len": 4096,
    "max_shift": 1.15, "num_train_timesteps": 1000, "shift": 1.0, "use_dynamic_shifting": False,
}


def case(name, config, steps, image_seq_len, flux_sigmas=True, linear_sigmas=False, linear_quadratic=False):
    sched = FlowMatchEulerDiscreteScheduler(**config)
    mu = calculate_shift(image_seq_len, sched.config.get("base_image_seq_len", 256),
                         sched.config.get("max_image_seq_len", 4096), sched.config.get("base_shift", 0.5),
                         sched.config.get("max_shift", 1.15))
    lq = None
    if linear_quadratic:  # MochiPipeline's sigmas (threshold 0.025), no mu
        from diffusers.pipelines.mochi.pipeline_mochi import linear_quadratic_schedule
        lq = linear_quadratic_schedule(steps, 0.025)
        timesteps, _ = retrieve_timesteps(sched, steps, "cpu", None, np.array(lq))
    elif linear_sigmas:  # HunyuanVideoPipeline's sigmas, no mu
        sigmas = np.linspace(1.0, 0.0, steps + 1)[:-1]
        timesteps, _ = retrieve_timesteps(sched, steps, "cpu", sigmas=sigmas)
    elif flux_sigmas:
        sigmas = np.linspace(1.0, 1 / steps, steps)
        timesteps, _ = retrieve_timesteps(sched, steps, "cpu", sigmas=sigmas, mu=mu)
    else:
        sched.set_timesteps(steps, device="cpu", mu=mu if config["use_dynamic_shifting"] else None)
        timesteps = sched.timesteps
    # One Euler step at index 1 on a fixed sample.
    sample = torch.linspace(-1, 1, 16, dtype=torch.float32).reshape(1, 4, 4)
    model_output = torch.linspace(0.5, -0.7, 16, dtype=torch.float32).reshape(1, 4, 4)
    sched.set_begin_index(0)
    sched.step(model_output, timesteps[0], sample)  # advance to index 1
    prev = sched.step(model_output, timesteps[1] if steps > 1 else timesteps[0], sample, return_dict=False)[0] \
        if steps > 1 else None
    out = {
        "name": name, "config": config, "steps": steps, "image_seq_len": image_seq_len, "mu": mu,
        "flux_sigmas": flux_sigmas and not linear_sigmas and not linear_quadratic, "linear_sigmas": linear_sigmas,
        "linear_quadratic": linear_quadratic, "linear_quadratic_sigmas": lq,
        "sigmas": [float(x) for x in sched.sigmas.tolist()],
        "timesteps": [float(x) for x in timesteps.tolist()],
    }
    if prev is not None:
        out["step"] = {"index": 1, "sample": sample.flatten().tolist(), "model_output": model_output.flatten().tolist(),
                       "prev": prev.flatten().tolist()}
    return out


cases = [
    case("dev_seq256_28", DEV, 28, 256),
    case("dev_seq4096_50", DEV, 50, 4096),
    case("dev_seq16_2", DEV, 2, 16),
    case("dev_seq1024_1", DEV, 1, 1024),
    case("schnell_4", SCHNELL, 4, 4096),
    case("static_shift3_7", STATIC, 7, 1024),
    case("dev_no_custom_sigmas_10", DEV, 10, 1024, flux_sigmas=False),
    case("static_no_custom_sigmas_9", STATIC, 9, 1024, flux_sigmas=False),
    case("hunyuan_linear_50", HUNYUAN, 50, 1024, linear_sigmas=True),
    case("hunyuan_linear_7", HUNYUAN, 7, 1024, linear_sigmas=True),
    case("hunyuan_linear_1", HUNYUAN, 1, 1024, linear_sigmas=True),
    case("mochi_64", MOCHI, 64, 1024, linear_quadratic=True),
    case("mochi_3", MOCHI, 3, 1024, linear_quadratic=True),
    case("mochi_2", MOCHI, 2, 1024, linear_quadratic=True),
    case("mochi_17", MOCHI, 17, 1024, linear_quadratic=True),
]
print(json.dumps({"cases": cases}))
