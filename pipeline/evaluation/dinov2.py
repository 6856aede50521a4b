"""DINOv2 ViT-L/14 features for FD-DINOv2 (Stein et al., NeurIPS 2023) and the quality metrics
in that space: timm's `vit_large_patch14_dinov2.lvd142m` (Meta's LVD-142M weights, as
torch.hub's facebookresearch/dinov2 `dinov2_vitl14`), the final-norm CLS token (1024-d), with
dgm-eval's preprocessing: each image resized to 224×224 bicubic by PIL, then ImageNet's mean and
std (dgm_eval/models/dinov2.py).

The weights are read from one file (rule fetch_dinov2 puts timm's hub file there, or
fid.weights names one) through timm's own pretrained loader (`pretrained_cfg_overlay` file),
which adapts the position embedding to 224 px as it does for a hub download.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pipeline.core import io

ARCH = "vit_large_patch14_dinov2.lvd142m"
INPUT_SIZE = 224
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def dinov2_model(device, weights: str | Path, arch: str = ARCH):
    """timm's DINOv2 `arch` at 224 px, no classifier (the CLS token), its weights from the file
    `weights`, and the file's sha256. `arch` is a setting for the tests' smaller stand-ins only."""
    import timm

    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(f"DINOv2 weights {str(weights)!r} not found; run snakemake "
                                "(rule fetch_dinov2 fetches them) or set fid.weights")
    model = timm.create_model(arch, pretrained=True, num_classes=0, img_size=INPUT_SIZE,
                              pretrained_cfg_overlay={"file": str(weights)})
    return model.to(device).eval(), io.sha256_file(weights)


def preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 N×H×W×3 → float32 N×3×224×224 as dgm-eval: PIL bicubic resize, /255, ImageNet
    normalisation (PIL's bicubic, not torch's: their kernels differ)."""
    from PIL import Image

    out = np.empty((len(images), 3, INPUT_SIZE, INPUT_SIZE), np.float32)
    for i, im in enumerate(images):
        big = Image.fromarray(im).resize((INPUT_SIZE, INPUT_SIZE), Image.BICUBIC)
        x = np.asarray(big, np.float32) / 255.0
        out[i] = ((x - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)
    return out


def dinov2_features(model, images: np.ndarray, batch_size: int, device, autocast) -> np.ndarray:
    """The CLS-token features (N×d float64) of uint8 N×H×W×3 images; `autocast` is the
    precision's context (pipeline.evaluation.frechet.autocast_for)."""
    import torch

    out = []
    for lo in tqdm(range(0, len(images), batch_size), desc="dinov2", mininterval=5):
        x = torch.from_numpy(preprocess(images[lo:lo + batch_size])).to(device)
        with torch.no_grad(), autocast():
            out.append(model(x).float().double().cpu().numpy())
    return np.concatenate(out)
