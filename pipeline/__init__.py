"""adainf-pipeline: contrastive learning with generated data (AdaInf, ICLR 2024).

Stages, each `python -m pipeline.STAGE` (one Snakemake rule each): prepare_real, train_generator,
sample, cut_npz, fid_stats, fid, pack, pretrain, linear_eval, search_select, report.

Libraries, by domain: core (files, runtime, errors, GPU slots), data (real sources, the packed
dataset, inflation), generation (UNets and samplers), evaluation (FID, linear probes), ssl
(pretraining), search (the `auto` strategy's search), study (cells, tables, figures), dag (what
the Snakefile imports).
"""

__version__ = "0.1.0"
