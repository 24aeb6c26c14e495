#!/usr/bin/env python3
"""Exports a VGG / ResNet / MobileNet V2 to the engine's .safetensors (torchvision state_dict names + metadata).

Examples (Debian's python3-torch; no `safetensors` package needed):
  # a torchvision architecture with seeded random weights and non-trivial BatchNorm statistics
  /usr/bin/python3 tools/export_safetensors.py --arch resnet50 --random --seed 0 -o r50.safetensors
  # a checkpoint: a state_dict, or a dict with "state_dict"/"model" (and optionally "config")
  /usr/bin/python3 tools/export_safetensors.py --arch vgg16 --checkpoint ckpt.pt -o vgg16.safetensors
  # a width-scaled, several-headed model, stored as F16
  /usr/bin/python3 tools/export_safetensors.py --config '{"arch":"resnet18","width":0.5,
      "heads":[{"name":"gender","outputs":2}]}' --checkpoint ckpt.pt --dtype F16 -o m.safetensors

Metadata written: format, arch, config (JSON the engine rebuilds the model from), input_size,
mean, std, labels (JSON), plus any --meta KEY=VALUE.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402


def export(model, cfg, path, dtype="F32", input_size="3,224,224", mean="0.485,0.456,0.406",
           std="0.229,0.224,0.225", labels=None, extra=None):
    import torch_models
    tensors = {k: v.numpy() for k, v in torch_models.state_dict_for_engine(model).items()}
    meta = {"format": "facecnn-1", "arch": cfg["arch"], "config": torch_models.config_json(cfg),
            "input_size": input_size, "mean": mean, "std": std}
    if labels is not None:
        meta["labels"] = json.dumps(labels)
    meta.update(extra or {})
    safetensors_io.save(path, tensors, meta, dtype=dtype)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", help="vgg11..vgg19[_bn], resnet18/34/50/101, mobilenet_v2")
    ap.add_argument("--config", help="engine ModelConfig as JSON (overrides --arch/--num-classes)")
    ap.add_argument("--num-classes", type=int, default=1000)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="torch.save()d state_dict or {'state_dict'|'model': ...}")
    src.add_argument("--random", action="store_true", help="seeded random weights")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["F32", "F16", "BF16"], default="F32")
    ap.add_argument("--input-size", default="3,224,224")
    ap.add_argument("--mean", default="0.485,0.456,0.406")
    ap.add_argument("--std", default="0.229,0.224,0.225")
    ap.add_argument("--labels", help="JSON labels, e.g. '{\"gender\":[\"m\",\"f\"]}'")
    ap.add_argument("--meta", action="append", default=[], help="extra KEY=VALUE metadata")
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()

    import torch
    import torch_models
    if a.config:
        cfg = torch_models.default_config(**json.loads(a.config))
    elif a.arch:
        cfg = torch_models.default_config(a.arch, num_classes=a.num_classes)
    else:
        ap.error("give --arch or --config")
    torch.manual_seed(a.seed)
    model = torch_models.build(cfg).eval()
    if a.random:
        torch_models.randomize_batchnorm(model, torch.Generator().manual_seed(a.seed))
    else:
        ck = torch.load(a.checkpoint, map_location="cpu")
        if isinstance(ck, dict) and "config" in ck and not a.config:
            cfg = torch_models.default_config(**ck["config"])
            model = torch_models.build(cfg).eval()
        sd = ck.get("state_dict", ck.get("model", ck)) if isinstance(ck, dict) else ck
        sd = {k.replace("heads.", "multi.heads.", 1) if k.startswith("heads.") else k: v for k, v in sd.items()}
        model.load_state_dict(sd, strict=True)
    extra = dict(kv.split("=", 1) for kv in a.meta)
    export(model, cfg, a.output, a.dtype, a.input_size, a.mean, a.std,
           json.loads(a.labels) if a.labels else None, extra)
    print(f"wrote {a.output} ({cfg['arch']}, {sum(p.numel() for p in model.parameters())} parameters, {a.dtype})")


if __name__ == "__main__":
    main()
