"""Closed lists of names, one place each; the schema's enums and every stage's `choices` match them."""

METHODS = ("simclr", "mocov2plus", "byol", "barlow")
OPTIMIZERS = ("lars", "sgd", "adamw")
SAMPLERS = ("ddpm", "ddim", "edm")
# a network's precision: fp32, or torch.autocast to bf16 or fp16
PRECISIONS = ("fp32", "bf16", "fp16")
# the FID Inception's precision: fp32 (TF32 off), tf32 (fp32 with TF32 CUDA matmuls), bf16
FID_PRECISIONS = ("fp32", "tf32", "bf16")
FID_FEATURES = ("inception", "pixels")
PROTOCOLS = ("online", "offline", "features")  # of linear evaluation; online runs in pretraining
REAL_SOURCES = ("digits", "cifar10", "cifar100", "npz", "imagefolder")
GENERATOR_SOURCES = ("train", "pretrained", "npz")
AUGMENTATIONS = ("standard", "weak")  # a strategy's preset; BYOL/Barlow take its asym_ variant
# the symmetric presets a method may train with instead (pretrain.method_augmentation)
SYMMETRIC_PRESETS = (*AUGMENTATIONS, "mild")
# the presets of the methods that train two differently augmented views (solarisation on view 2
# only): a strategy's preset with `asym_` before it (pipeline.vocab.augmentation.trained_preset)
ASYMMETRIC_METHODS = ("byol", "barlow")
ASYMMETRIC_PRESETS = tuple(f"asym_{name}" for name in AUGMENTATIONS)

# the settings a sweep may vary (experiments.sweeps), the auto search's grid (auto.candidates)
SWEEPABLE = ("dup", "crop_min_scale", "jitter_strength", "num_generated", "real_fraction",
             "generated_keep")
CANDIDATE_SETTINGS = ("generated", "dup", "augmentation", "crop_min_scale", "jitter_strength",
                      "generated_keep")
WANDB_MODES = ("offline", "online")  # logging.wandb.mode

RANDOM_INIT = "random_init"  # the encoder before pretraining, evaluated as a baseline
AUTO = "auto"  # the strategy that the search chooses (pipeline/search/, config.yaml's `auto`)
# per-image scores of generated images (pipeline.evaluation.quality.image_scores), which
# `generated_keep` ranks by (config quality.score)
QUALITY_SCORES = ("realism", "density")
