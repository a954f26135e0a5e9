"""Run an exported model on image files in onnxruntime: top-k classes, or upscaled images for super-resolution.

MODEL is a standalone .onnx or a graph with its sidecar. INPUT is any mix of image files and folders (searched
recursively for .png/.jpg/.jpeg/.bmp/.tif/.tiff). Images are prepared the way the model's training data was
(recorded at export). Classifiers print the top-k classes with their probabilities, named when the data set named
them; super-resolution models upscale the luma (Y) with the network and the colour (CbCr) bicubically, and write
<stem>_x<scale>.png files into --out.

Examples:
  toolchain run runs/qat/export/model.compressed.onnx shirt.png shoes/
  toolchain run runs/sr/export/model.onnx photo.jpg --out upscaled/
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..progress import bar_disable
from .options import add_containers, add_device, add_out_dir, add_public_key

HELP = "run an exported model on images: top-k classes, or upscaled images (super-resolution)"
EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="exported .onnx (standalone, or graph naming its sidecar)")
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files or folders")
    p.add_argument("--top", type=int, default=5, help="classes to show per image (default: 5)")
    add_out_dir(p, "folder for upscaled images (SR models; default: upscaled)", Path("upscaled"))
    p.add_argument("--batch-size", type=int, default=32, help="images per onnxruntime call (default: 32)")
    add_device(p, "onnxruntime")
    p.add_argument("--allow-cpu-fallback", action="store_true", help="run on CPU when CUDA is not available")
    add_containers(p)
    add_public_key(p)
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")


def _images(inputs: list[Path]) -> list[Path]:
    from runtime import ToolchainError

    found: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
        elif item.is_file():
            found.append(item)
        else:
            raise ToolchainError(f"input {item} does not exist")
    if not found:
        raise ToolchainError("no images found in the inputs")
    return found


def _open(path: Path) -> Any:
    from PIL import Image, UnidentifiedImageError

    from runtime import ToolchainError

    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:  # the bomb: PIL's pixel limit
        raise ToolchainError(f"cannot read image {path}: {e}") from None


def run(args: argparse.Namespace) -> int:
    import runtime
    from runtime import ToolchainError

    if args.top < 1 or args.batch_size < 1:
        raise ToolchainError("--top and --batch-size must be at least 1")
    model = runtime.load(
        args.model,
        args.device,
        allow_fallback=args.allow_cpu_fallback,
        containers=args.containers,
        public_key=args.public_key,
    )
    if model.containers.warning():
        print(f"warning: {model.containers.warning()}", file=sys.stderr)
    meta = model.config
    spec, task = meta.get("preprocess") or {}, meta.get("task", "classification")
    if not spec:
        raise ToolchainError(f"{args.model} records no preprocessing (exported by an older toolchain?)")
    paths = _images(args.inputs)
    if task == "super_resolution":
        return _upscale(model, paths, spec, args)
    return _classify(model, paths, spec, meta.get("class_names") or [], args)


def _classify(model: Any, paths: list[Path], spec: dict, names: list[str], args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from runtime.preprocess import prepare_image

    bar = bar_disable(not args.json and len(paths) > 1)
    for start in tqdm(range(0, len(paths), args.batch_size), desc="run", disable=bar):
        chunk = paths[start : start + args.batch_size]
        x = np.stack([prepare_image(_open(p), spec) for p in chunk])
        logits = model.run(x)[0]
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        for path, p in zip(chunk, probs):
            top = np.argsort(-p)[: args.top]
            labels = [names[i] if i < len(names) else f"class {i}" for i in top]
            if args.json:
                print(
                    json.dumps(
                        {
                            "file": str(path),
                            "top": [{"class": int(i), "name": n, "p": float(p[i])} for i, n in zip(top, labels)],
                        }
                    )
                )
            else:
                print(f"{path}: " + ", ".join(f"{n} {100 * p[i]:.1f}%" for i, n in zip(top, labels)))
    return 0


def _upscale(model: Any, paths: list[Path], spec: dict, args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image
    from tqdm import tqdm

    from runtime.preprocess import prepare_image

    scale = int(spec["scale"])
    for path in tqdm(paths, desc="upscale", disable=bar_disable(not args.json and len(paths) > 1)):
        img = _open(path).convert("RGB")
        y = prepare_image(img, spec)[None]
        hr_y = np.clip(model.run(y)[0][0, 0], 0.0, 1.0)
        size = (hr_y.shape[1], hr_y.shape[0])
        ycbcr = np.asarray(img.convert("YCbCr").resize(size, Image.Resampling.BICUBIC)).copy()
        ycbcr[..., 0] = np.round(hr_y * 255.0).astype(np.uint8)
        out = args.out_dir / f"{path.stem}_x{scale}.png"
        _save_png(out, Image.fromarray(ycbcr, "YCbCr").convert("RGB"))
        print(json.dumps({"file": str(path), "output": str(out)}) if args.json else f"{path} -> {out}")
    return 0


def _save_png(path: Path, image: Any) -> None:
    from runtime import atomic_write

    atomic_write(path, lambda fh: image.save(fh, format="PNG"))
