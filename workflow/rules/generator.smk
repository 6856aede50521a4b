rule train_generator:
    input:
        rules.prepare_real.output.train,
    output:
        folder=directory(PATHS.generator()),
        record=PATHS.record(PATHS.generator()),
    params:
        opts=train_generator_args(config),
        speed=untracked(train_generator_untracked_args(config, PATHS.generator_checkpoint())),
        track=tracking(config, "train_generator", log_every=True),
        device=untracked(DEVICE),
        launcher=generator_launcher(config),
    log:
        os.path.join(LOGS, "train_generator.log"),
    benchmark:
        os.path.join(BENCHMARKS, "train_generator.tsv")
    threads: threads_for(config, "train_generator")
    # the generator is on the critical path: start it before the real-only pretraining jobs
    priority: 50
    resources:
        gpu=config["generator"]["train"]["processes"],
    conda:
        CONDA_ENV
    shell:
        job_shell(
            "{params.launcher} python -m pipeline.train_generator --real {input} --out {output.folder}"
            " {params.opts} {params.speed} {params.track}",
            gpu=True, runtime=True,
        )


rule sample:
    input:
        # a local folder by its content record (ancient: the folder's own time decides nothing)
        [ancient(f) if f == config["generator"]["model"] else f for f in PATHS.generator_inputs()],
    output:
        images=PATHS.shard_data(PATHS.shard_pattern())[0],
        labels=PATHS.shard_data(PATHS.shard_pattern())[1],
        manifest=PATHS.shard_pattern(),
    wildcard_constraints:
        shard=r"\d{5}",
    params:
        # the input folder itself where the workflow trains or fetches it (the lint's rule: no
        # hard-coded prefix of an input), else the config's own local folder
        model=lambda wc, input: input[0] if input else PATHS.generator_model(),
        range=lambda wc: PATHS.shard_range(wc.shard),
        opts=sample_args(config),
        speed=untracked(sample_untracked_args(config)),
        track=tracking(config, "sample/shard_{shard}"),
        device=untracked(DEVICE),
    log:
        os.path.join(LOGS, "sample/shard_{shard}.log"),
    benchmark:
        os.path.join(BENCHMARKS, "sample/shard_{shard}.tsv")
    threads: threads_for(config, "sample")
    priority: 50
    resources:
        gpu=1,
    conda:
        CONDA_ENV
    shell:
        job_shell(
            "python -m pipeline.sample --model {params.model:q} --out {output.manifest}"
            " --start {params.range[start]} --count {params.range[count]} {params.opts}"
            " {params.speed} {params.track}",
            gpu=True, runtime=True,
        )


# One job per shard, so the Inception work scales with the sampling jobs. From the same
# features each also keeps its share of the quality subset (the real job: the real subset's k-NN
# radii; a shard's: every image's quality scores against them).
rule fid_stats:
    input:
        unpack(lambda wc: PATHS.fid_stats_inputs(wc.name)),
    output:
        stats=PATHS.fid_stats("{name}"),
        quality=PATHS.fid_quality("{name}"),
        stats_record=PATHS.record(PATHS.fid_stats("{name}")),
        quality_record=PATHS.record(PATHS.fid_quality("{name}")),
    wildcard_constraints:
        name=r"real|shard_\d{5}",
    params:
        opts=fid_stats_args(config),
        quality=lambda wc: fid_quality_args(config, **PATHS.fid_quality_job(wc.name)),
        # the weights rule fetch_inception or fetch_dinov2 verified in the torch.hub cache (a place on this
        # machine; fid.weights, when set, is among the tracked opts)
        fetched=untracked(fetched_weights_arg(INPUTS.feature_weights().get("out"))),
        speed=untracked(fid_stats_untracked_args(config)),
        device=untracked(DEVICE),
    log:
        os.path.join(LOGS, "fid_stats/{name}.log"),
    benchmark:
        os.path.join(BENCHMARKS, "fid_stats/{name}.tsv")
    threads: threads_for(config, "fid_stats")
    resources:
        gpu=1,
    conda:
        CONDA_ENV
    shell:
        job_shell(
            "python -m pipeline.fid_stats --images {input.images} --out {output.stats}"
            " --quality-out {output.quality} {params.opts} {params.quality} {params.fetched}"
            " {params.speed}",
            gpu=True, runtime=True,
        )


rule fid:
    input:
        real=PATHS.real_fid_reference(),
        generated=PATHS.shard_fid_stats(),
        real_quality=PATHS.real_quality(),
        generated_quality=PATHS.shard_quality_files(),
    output:
        result=PATHS.fid_result(),
        record=PATHS.record(PATHS.fid_result()),
    params:
        speed=untracked(fid_untracked_args(config)),
    log:
        os.path.join(LOGS, "fid.log"),
    benchmark:
        os.path.join(BENCHMARKS, "fid.tsv")
    conda:
        CONDA_ENV
    shell:
        job_shell(
            "python -m pipeline.fid --real {input.real} --generated {input.generated}"
            " --out {output.result} --real-quality {input.real_quality}"
            " --generated-quality {input.generated_quality} {params.speed}",
        )
