rule train_generator:
    input:
        f"{OUT}/real/train.npz",
    output:
        directory(f"{OUT}/generator"),
    params:
        t=config["generator"]["train"],
        opts=" ".join([
            opt("--channels", config["generator"]["train"]["channels"]),
            opt("--attention", config["generator"]["train"]["attention"]),
        ]),
        device=untracked(DEVICE),
    log:
        "logs/train_generator.log",
    benchmark:
        "benchmarks/train_generator.tsv"
    threads: threads_for("train_generator")
    # the generator is on the critical path: start it before the real-only pretraining jobs
    priority: 50
    resources:
        gpu=1,
    conda:
        CONDA_ENV
    shell:
        GPU_STAGE + "train_generator --real {input} --out {output} {params.opts}"
        " --layers-per-block {params.t[layers_per_block]} --steps {params.t[steps]}"
        " --batch-size {params.t[batch_size]} --lr {params.t[lr]} --ema-decay {params.t[ema_decay]}"
        " --beta-schedule {params.t[beta_schedule]} --seed {params.t[seed]}"
        + RUNTIME + LOG


rule sample:
    input:
        generator_input,
    output:
        images=f"{OUT}/samples/shard_{{shard}}.images.npy",
        labels=f"{OUT}/samples/shard_{{shard}}.labels.npy",
        manifest=f"{OUT}/samples/shard_{{shard}}.json",
    wildcard_constraints:
        shard=r"\d{5}",
    params:
        model=generator_model(),
        range=shard_range,
        opts=sample_args(config),
        speed=untracked(sample_untracked_args(config)),
        device=untracked(DEVICE),
    log:
        "logs/sample/shard_{shard}.log",
    benchmark:
        "benchmarks/sample/shard_{shard}.tsv"
    threads: threads_for("sample")
    priority: 50
    resources:
        gpu=1,
    conda:
        CONDA_ENV
    shell:
        GPU_STAGE + "sample --model {params.model:q} --out {output.manifest}"
        " --start {params.range[start]} --count {params.range[count]} {params.opts}"
        " {params.speed}" + RUNTIME + LOG


def fid_stats_input(wildcards):
    if wildcards.name == "real":
        return {"images": f"{OUT}/real/train.npz"}
    manifest = f"{OUT}/samples/{wildcards.name}.json"
    return {"images": manifest, "data": shard_data(manifest)}


def real_fid_reference():
    """The real statistics: a given mu/sigma (or stats) npz, else computed from the train split."""
    return config["fid"]["reference"] or f"{OUT}/fid/real.stats.npz"


# One job per shard, so the Inception work scales with the sampling jobs.
rule fid_stats:
    input:
        unpack(fid_stats_input),
    output:
        f"{OUT}/fid/{{name}}.stats.npz",
    wildcard_constraints:
        name=r"real|shard_\d{5}",
    params:
        opts=fid_stats_args(config),
        speed=untracked(fid_stats_untracked_args(config)),
        device=untracked(DEVICE),
    log:
        "logs/fid_stats/{name}.log",
    benchmark:
        "benchmarks/fid_stats/{name}.tsv"
    threads: threads_for("fid_stats")
    resources:
        gpu=1,
    conda:
        CONDA_ENV
    shell:
        GPU_STAGE + "fid_stats --images {input.images} --out {output} {params.opts} {params.speed}"
        + RUNTIME + LOG


rule fid:
    input:
        real=real_fid_reference(),
        generated=[f"{OUT}/fid/shard_{i:05d}.stats.npz" for i in range(num_shards())],
    output:
        f"{OUT}/fid.json",
    log:
        "logs/fid.log",
    conda:
        CONDA_ENV
    shell:
        STAGE + "fid --real {input.real} --generated {input.generated} --out {output}" + LOG
