"""What every family's opt-in FP8 export (export_model.py --fp8) must show, shared by the export tests."""
import json
import os
import tempfile

import torch

from ditserve_export.flux import ExportError


def weight_dtypes(model: torch.nn.Module, fp8_modules) -> str:
    """The listed modules' weights are e4m3 with float32 scales; every other parameter is bf16."""
    bad = [(n, t.dtype) for n, t in model.named_parameters()
           if t.dtype != (torch.float8_e4m3fn if n.rsplit(".", 1)[0] in fp8_modules and n.endswith(".weight") else
                          torch.float32 if n.endswith("weight_scale") else torch.bfloat16)]
    assert not bad, bad[:3]
    return f"{len(fp8_modules)} e4m3 GEMMs, float32 scales, the rest bf16"


def refusal_and_manifest(export, src: str) -> str:
    """export(src, out, dtype=..., fp8=True) refuses float32 naming bfloat16, and a bfloat16 export (the exporter's
    own check against diffusers included) writes model.json transformer.weights "fp8_e4m3"."""
    with tempfile.TemporaryDirectory() as out:
        try:
            export(src, out, dtype="float32", fp8=True)
        except ExportError as e:
            assert "bfloat16" in str(e), str(e)
        else:
            raise AssertionError("--fp8 with float32 was not refused")
        manifest = export(src, out, dtype="bfloat16", fp8=True)
        with open(os.path.join(out, "model.json")) as f:
            on_disk = json.load(f)["transformer"]["weights"]
        assert manifest["transformer"]["weights"] == on_disk == "fp8_e4m3", on_disk
    return "float32 refused; model.json transformer.weights fp8_e4m3"
