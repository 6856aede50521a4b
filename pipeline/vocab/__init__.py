"""The project's vocabulary, torch-free: the names the config, the Snakefile and the stages share.

- `names`: every closed list of names (methods, optimisers, samplers, precisions, protocols,
  sources, FID features, sweepable and searched settings, W&B modes) and the two strategy names
  the workflow reserves;
- `augmentation`: the augmentation presets' parameters (plain values);
- `methods`: each SSL method's default hyper-parameters (the paper's / solo-learn's);
- `options`: every stage option, declared once (its parser, the rule's options and the
  config key it comes from).

- `schema`: the config schema (pipeline/vocab/config.schema.yaml), which Snakemake validates
  with; `names` reads its lists from the schema's enums, `options` each option's help and type.
"""
