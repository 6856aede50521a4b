rule prepare_real:
    output:
        train=PATHS.real("train"),
        test=PATHS.real("test"),
    params:
        opts=prepare_real_args(config),
        # fetching CIFAR or finding it on disk gives the same data
        download=untracked(prepare_real_untracked_args(config)),
        device=untracked(DEVICE),
    log:
        "logs/prepare_real.log",
    benchmark:
        "benchmarks/prepare_real.tsv"
    threads: threads_for(config, "prepare_real")
    conda:
        CONDA_ENV
    shell:
        "python -m pipeline.prepare_real {params.opts} {params.download}"
        " --train-out {output.train} --test-out {output.test}" + RUNTIME + LOG


# The generated part references the sample shards in place (they are written in the packed
# format with their checksums), so packing it writes only a manifest.
rule pack:
    input:
        files=lambda wc: rules.prepare_real.output.train if wc.part == "real" else PATHS.shard_files(),
        data=lambda wc: [] if wc.part == "real" else PATHS.all_shard_data(),
    output:
        directory(PATHS.dataset("{part}")),
    wildcard_constraints:
        part="real|generated",
    log:
        "logs/pack_{part}.log",
    benchmark:
        "benchmarks/pack_{part}.tsv"
    conda:
        CONDA_ENV
    shell:
        "python -m pipeline.pack --part {wildcards.part} --inputs {input.files} --out {output}" + LOG
