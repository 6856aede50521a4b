"""Self-supervised pretraining: encoders, the four methods and their losses, batched augmentation
on the device, optimisers, the training loop, the online probe, DDP and the memory plan. (The
methods' defaults and the augmentation presets, which the Snakefile reads without torch, are in
pipeline.vocab.)"""
