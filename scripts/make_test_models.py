#!/usr/bin/env python3
"""Build the tiny random test models (diffusers sources + exported ditserve model directories).

  make_test_models.py --out DIR

Writes DIR/src/flux-tiny-{dev,schnell} (diffusers FluxPipeline dirs), DIR/flux-tiny-{dev,schnell}
(ditserve model dirs, float32) and DIR/flux-tiny-dev-fp8 (bfloat16 with FP8 block weights: --fp8), DIR/src/mochi-tiny and DIR/mochi-tiny,
DIR/src/hunyuan-video-tiny (a diffusers HunyuanVideoPipeline dir) and DIR/hunyuan-video-tiny (float32, VAE
tiles of 32 pixels so that the tests' small videos exercise the spatial and temporal tiling),
DIR/src/cogvideox-tiny-{2b,5b,1.5} (CogVideoXPipeline dirs) and DIR/cogvideox-tiny-{2b,5b,1.5} (float32).  Idempotent: skipped when DIR/.done holds the hash of this script and of
the ditserve_export package.
"""
import argparse
import glob
import hashlib
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

VARIANTS = ("dev", "schnell")


def source_hash() -> str:
    h = hashlib.sha256()
    files = [os.path.abspath(__file__)] + sorted(glob.glob(os.path.join(HERE, "ditserve_export", "*.py")))
    for f in files:
        h.update(os.path.basename(f).encode())
        with open(f, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


def fresh_dirs(out: str, name: str):
    """Empty places for a model's diffusers source (out/src/name) and its export (out/name)."""
    src, dst = os.path.join(out, "src", name), os.path.join(out, name)
    for d in (src, dst):
        if os.path.isdir(d):
            shutil.rmtree(d)
    return src, dst


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--force", action="store_true", help="rebuild even if up to date")
    a = p.parse_args(argv)

    out = os.path.abspath(a.out)
    done = os.path.join(out, ".done")
    digest = source_hash()
    if not a.force and os.path.isfile(done):
        with open(done) as f:
            if f.read().strip() == digest:
                print(f"test models in {out} are up to date")
                return 0

    from ditserve_export.flux import export_flux
    from ditserve_export.tiny import make_tiny_flux, tiny_limits

    os.makedirs(out, exist_ok=True)
    if os.path.exists(done):
        os.remove(done)
    t0 = time.time()
    for variant in VARIANTS:
        name = f"flux-tiny-{variant}"
        src, dst = fresh_dirs(out, name)
        make_tiny_flux(src, variant=variant, seed=0)
        export_flux(src, dst, dtype="float32", name=name, limits=tiny_limits(variant))
        if variant == "dev":
            fp8 = dst + "-fp8"
            if os.path.isdir(fp8):
                shutil.rmtree(fp8)
            export_flux(src, fp8, dtype="bfloat16", name=name + "-fp8", limits=tiny_limits(variant), fp8=True)
    from ditserve_export.mochi import export_mochi
    from ditserve_export.tiny_mochi import make_tiny_mochi, tiny_mochi_limits
    src, dst = fresh_dirs(out, "mochi-tiny")
    make_tiny_mochi(src, seed=0)
    export_mochi(src, dst, dtype="float32", name="mochi-tiny", limits=tiny_mochi_limits())
    from ditserve_export.cogvideox import export_cogvideox
    from ditserve_export.cogvideox_tiny import make_tiny_cogvideox, tiny_cogvideox_limits

    for variant in ("2b", "5b", "1.5"):
        name = f"cogvideox-tiny-{variant}"
        src, dst = fresh_dirs(out, name)
        make_tiny_cogvideox(src, variant=variant, seed=0)
        export_cogvideox(src, dst, dtype="float32", name=name, limits=tiny_cogvideox_limits())

    from ditserve_export.hunyuan_video import export_hunyuan_video
    from ditserve_export.tiny import make_tiny_hunyuan_video, tiny_hunyuan_limits
    src, dst = fresh_dirs(out, "hunyuan-video-tiny")
    make_tiny_hunyuan_video(src, seed=0)
    export_hunyuan_video(src, dst, dtype="float32", name="hunyuan-video-tiny", limits=tiny_hunyuan_limits(),
                         vae_tiles={"tile_sample_min_height": 32, "tile_sample_min_width": 32,
                                    "tile_sample_stride_height": 24, "tile_sample_stride_width": 24})
    with open(done, "w") as f:
        f.write(digest + "\n")
    print(f"test models written to {out} in {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
