"""Closed lists of names, each read from the config schema's enum (pipeline.vocab.schema: the
file Snakemake validates with is the one list; every stage's `choices` come from it too)."""

from pipeline.vocab.schema import names, schema_entry

METHODS = names("experiments.methods.[]")
OPTIMIZERS = names("pretrain.optimizer")
SAMPLERS = names("sampling.sampler")
# a network's precision: fp32, or torch.autocast to bf16 or fp16
PRECISIONS = names("pretrain.precision")
# the FID Inception's precision: fp32 (TF32 off), tf32 (fp32 with TF32 CUDA matmuls), bf16
FID_PRECISIONS = names("fid.precision")
FID_FEATURES = names("fid.features")
PROTOCOLS = names("linear_eval.protocols.[]")  # of linear evaluation; online runs in pretraining
REAL_SOURCES = names("real.source")
STRATEGY_PRESETS = names("strategies.*.augmentation")  # a strategy's preset
# the symmetric presets a method may train with instead (pretrain.method_augmentation)
SYMMETRIC_PRESETS = names("pretrain.method_augmentation.*.*")
# the presets of the methods that train two differently augmented views (solarisation on view 2
# only): a strategy's preset with `asym_` before it (pipeline.vocab.augmentation.trained_preset)
ASYMMETRIC_METHODS = ("byol", "barlow")
ASYMMETRIC_PRESETS = tuple(f"asym_{name}" for name in STRATEGY_PRESETS)

# the settings a sweep may vary (experiments.sweeps), the auto search's grid (auto.candidates)
SWEEPABLE = names("experiments.sweeps.[].setting")
CANDIDATE_SETTINGS = tuple(schema_entry("auto.candidates")["properties"])
WANDB_MODES = names("logging.wandb.mode")
# per-image scores of generated images (pipeline.evaluation.quality.image_scores), which
# `generated_keep` ranks by (config quality.score)
QUALITY_SCORES = names("quality.score")

# the two datasets a packed folder holds (pipeline.data.dataset.pack, pipeline.pack --part)
PARTS = ("real", "generated")

# the two strategy names the workflow reserves (the schema refuses them as strategies' names)
RANDOM_INIT = "random_init"  # the encoder before pretraining, evaluated as a baseline
AUTO = "auto"  # the strategy that the search chooses (pipeline/search/, config.yaml's `auto`)
