rule prepare_real:
    input:
        # the fetch record, when rule fetch_real downloads the data: this job reads only disk
        PATHS.real_inputs(),
    output:
        train=f"{OUT}/real/train.npz",
        test=f"{OUT}/real/test.npz",
    params:
        # fetching CIFAR (rule fetch_real) or finding it on disk gives the same data
        real=settings(config["real"], without=("download",)),
        root=opt("--root", config["real"]["root"]),
        device=untracked(DEVICE),
    log:
        LOGS + "prepare_real.log",
    benchmark:
        BENCHMARKS + "prepare_real.tsv"
    threads: threads_for(config, "prepare_real")
    conda:
        CONDA_ENV
    shell:
        STAGE + "prepare_real --source {params.real[source]} {params.root}"
        " --resolution {params.real[resolution]} --test-fraction {params.real[test_fraction]}"
        " --seed {params.real[seed]} --train-out {output.train} --test-out {output.test}"
        + RUNTIME + LOG


# The generated part references the sample shards in place (they are written in the packed
# format with their checksums), so packing it writes only a manifest.
rule pack:
    input:
        files=lambda wc: [f"{OUT}/real/train.npz"] if wc.part == "real" else PATHS.shard_files(),
        data=lambda wc: [] if wc.part == "real" else PATHS.all_shard_data(),
    output:
        directory(f"{OUT}/dataset/{{part}}"),
    wildcard_constraints:
        part="real|generated",
    log:
        LOGS + "pack_{part}.log",
    benchmark:
        BENCHMARKS + "pack_{part}.tsv"
    conda:
        CONDA_ENV
    shell:
        STAGE + "pack --part {wildcards.part} --inputs {input.files} --out {output}" + LOG
