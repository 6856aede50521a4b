rule train_generator:
    input:
        f"{OUT}/real/train.npz",
    output:
        directory(f"{OUT}/generator"),
    params:
        t=config["generator"]["train"],
        opts=lambda wc: " ".join([
            opt("--channels", config["generator"]["train"]["channels"]),
            opt("--attention", config["generator"]["train"]["attention"]),
        ]),
    log:
        "logs/train_generator.log",
    benchmark:
        "benchmarks/train_generator.tsv"
    threads: threads_for("train_generator")
    resources:
        gpu=1,
    conda:
        CONDA_ENV
    shell:
        STAGE + "train_generator --real {input} --out {output} {params.opts}"
        " --layers-per-block {params.t[layers_per_block]} --steps {params.t[steps]}"
        " --batch-size {params.t[batch_size]} --lr {params.t[lr]} --ema-decay {params.t[ema_decay]}"
        " --beta-schedule {params.t[beta_schedule]} --seed {params.t[seed]}"
        " " + common_args("train_generator") + " > {log} 2>&1"


rule sample:
    input:
        generator_input,
    output:
        f"{OUT}/samples/shard_{{shard}}.npz",
    wildcard_constraints:
        shard=r"\d{5}",
    params:
        s=config["sampling"],
        model=generator_model(),
        range=shard_range,
        opts=lambda wc: " ".join([
            opt("--steps", config["sampling"]["steps"]),
            opt("--channels-last", config["sampling"]["channels_last"]),
            opt("--compile", config["sampling"]["compile"]),
            *(opt(f"--{k.replace('_', '-')}", v) for k, v in config["sampling"]["edm"].items()),
        ]),
    log:
        "logs/sample/shard_{shard}.log",
    benchmark:
        "benchmarks/sample/shard_{shard}.tsv"
    threads: threads_for("sample")
    resources:
        gpu=1,
    conda:
        CONDA_ENV
    shell:
        STAGE + "sample --model {params.model:q} --out {output}"
        " --start {params.range[start]} --count {params.range[count]} --seed {params.s[seed]}"
        " --sampler {params.s[sampler]} {params.opts} --eta {params.s[eta]}"
        " --precision {params.s[precision]}"
        " --batch-size {params.s[batch_size]} " + common_args("sample") + " > {log} 2>&1"


rule fid:
    input:
        real=f"{OUT}/real/train.npz",
        generated=shard_files(),
    output:
        f"{OUT}/fid.json",
    params:
        f=config["fid"],
    log:
        "logs/fid.log",
    benchmark:
        "benchmarks/fid.tsv"
    threads: threads_for("fid")
    resources:
        gpu=1,
    conda:
        CONDA_ENV
    shell:
        STAGE + "fid --real {input.real} --generated {input.generated} --out {output}"
        " --features {params.f[features]} --batch-size {params.f[batch_size]}"
        " " + common_args("fid") + " > {log} 2>&1"
