rule prepare_real:
    input:
        # the fetch record, when rule fetch_real downloads the data: this job reads only disk
        INPUTS.real(),
    output:
        train=PATHS.real("train"),
        test=PATHS.real("test"),
        train_record=PATHS.record(PATHS.real("train")),
        test_record=PATHS.record(PATHS.real("test")),
    params:
        opts=prepare_real_args(config),
        device=untracked(DEVICE),
    log:
        os.path.join(LOGS, "prepare_real.log"),
    benchmark:
        os.path.join(BENCHMARKS, "prepare_real.tsv")
    threads: threads_for(config, "prepare_real")
    conda:
        CONDA_ENV
    shell:
        job_shell(
            "python -m pipeline.prepare_real {params.opts}"
            " --train-out {output.train} --test-out {output.test}",
            runtime=True,
        )


# The generated part references the sample shards in place (they are written in the packed
# format with their checksums), so packing it writes only a manifest. A checkpoint beside the
# folder, dataset/PART.json records its content (every file's sha256): the consumers depend on
# that small file, which Snakemake compares by checksum, and on the folder as `ancient`. So a
# repack whose content equals the recorded one (a damaged folder moved aside and rebuilt)
# reruns nothing downstream, and one whose content differs reruns what depends on it.
checkpoint pack:
    input:
        files=lambda wc: rules.prepare_real.output.train if wc.part == "real" else PATHS.shard_files(),
        data=lambda wc: [] if wc.part == "real" else PATHS.all_shard_data(),
    output:
        folder=directory(PATHS.dataset("{part}")),
        record=f"{PATHS.dataset('{part}')}.json",
    wildcard_constraints:
        part="real|generated",
    log:
        os.path.join(LOGS, "pack_{part}.log"),
    benchmark:
        os.path.join(BENCHMARKS, "pack_{part}.tsv")
    conda:
        CONDA_ENV
    shell:
        job_shell(
            "python -m pipeline.pack --part {wildcards.part} --inputs {input.files} --out {output.folder}"
            " --record {output.record}",
        )
