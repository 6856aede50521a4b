"""Self-supervised pretraining: encoders, the four methods and their losses and defaults, batched
augmentation on the device, optimisers, the training loop, the online probe, DDP and the memory plan.
(It is only ever imported as pipeline.ssl, so it never shadows the standard library's ssl.)"""
