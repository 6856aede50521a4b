"""Data on disk: the real sources (digits, CIFAR, npz, image folders), the packed
checksummed memory-mappable dataset that pretraining reads, npz files brought as generated data,
and the inflated index that replicates the real set without copying it."""
