#!/usr/bin/env python3
"""Export a diffusers checkpoint directory into a ditserve model directory (docs/model_format.md).

  export_model.py --family flux|mochi --src DIR --out DIR [--dtype float32|bfloat16] [--fp8] [--name NAME]
                  [--t5-max-length N] [--no-verify]
  export_model.py --family cogvideox --src DIR --out DIR [--dtype float16|bfloat16|float32] [--fp8] [--name NAME]
                  [--no-verify]
  export_model.py --family hunyuan_video --src DIR --out DIR [--dtype float32|bfloat16] [--fp8] [--name NAME]
                  [--no-verify]
--fp8 (with bfloat16): every family; for cogvideox 5b / 1.5 only (2b runs in float16).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ditserve_export.cogvideox import export_cogvideox  # noqa: E402
from ditserve_export.flux import DTYPES, EXPORTERS, ExportError  # noqa: E402
from ditserve_export.hunyuan_video import export_hunyuan_video  # noqa: E402
from ditserve_export.mochi import export_mochi  # noqa: E402

EXPORTERS = {**EXPORTERS, "hunyuan_video": export_hunyuan_video, "mochi": export_mochi}

EXPORTERS = dict(EXPORTERS, cogvideox=export_cogvideox)
DTYPES = dict(DTYPES, float16=None)  # cogvideox: 2b runs in float16


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", required=True, help=f"model family: {', '.join(sorted(EXPORTERS))}")
    p.add_argument("--src", required=True, help="diffusers pipeline directory (save_pretrained layout)")
    p.add_argument("--out", required=True, help="output ditserve model directory")
    p.add_argument("--dtype", default=None, choices=sorted(DTYPES),
                   help="weight dtype of the .pt files (default: flux float32; cogvideox the variant's: 2b float16, "
                        "5b / 1.5 bfloat16)")
    p.add_argument("--name", default=None, help="model name in model.json (default: basename of --src)")
    p.add_argument("--t5-max-length", type=int, default=None,
                   help="T5 sequence length (flux default: 512 for dev, 256 for schnell; mochi: 256)")
    p.add_argument("--fp8", action="store_true",
                   help="opt-in precision: the transformer blocks' GEMM weights in float8 e4m3 with per-output-feature "
                        "scales (needs --dtype bfloat16; GPUs with FP8 tensor cores run them as FP8 GEMMs)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip comparing traced components with eager PyTorch")
    a = p.parse_args(argv)

    fn = EXPORTERS.get(a.family)
    if fn is None:
        p.error(f"unknown --family {a.family!r}; supported: {', '.join(sorted(EXPORTERS))}")
    if not os.path.isdir(a.src):
        p.error(f"--src {a.src} is not a directory")
    if a.dtype is None and a.family != "cogvideox":
        a.dtype = "float32"
    try:
        fn(a.src, a.out, dtype=a.dtype, name=a.name, t5_max_length=a.t5_max_length, verify=not a.no_verify,
           **({"fp8": True} if a.fp8 else {}))
    except ExportError as e:
        print(f"export_model.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
