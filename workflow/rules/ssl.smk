def pretrain_inputs(wildcards):
    inputs = {"real": f"{OUT}/dataset/real"}
    if strategy(wildcards.strategy)["generated"]:
        inputs["generated"] = f"{OUT}/dataset/generated"
    return inputs


def pretrain_opts(wildcards, input):
    s = strategy(wildcards.strategy)
    p = config["pretrain"]
    steps = 0 if wildcards.strategy == "random_init" else p["steps"]
    method_args = p["method_args"].get(wildcards.method, {})
    return " ".join([
        opt("--generated", input.get("generated")),
        opt("--dup", s["dup"]),
        opt("--augmentation", s["augmentation"]),
        opt("--crop-min-scale", s.get("crop_min_scale")),
        opt("--jitter-strength", s.get("jitter_strength")),
        opt("--widths", p["backbone"]["widths"]),
        opt("--blocks", p["backbone"]["blocks"]),
        opt("--steps", steps),
        *(opt(f"--{k.replace('_', '-')}", p[k]) for k in
          ("batch_size", "optimizer", "lr", "weight_decay", "warmup_steps", "precision",
           "checkpoint_every", "seed")),
        *(opt("--method-arg", f"{k}={json.dumps(v)}") for k, v in method_args.items()),
    ])


def pretrain_launcher(wildcards):
    n = config["pretrain"]["processes"]
    if n == 1:
        return "python -m pipeline.pretrain"
    return f"torchrun --standalone --nproc_per_node {n} -m pipeline.pretrain"


rule pretrain:
    input:
        unpack(pretrain_inputs),
    output:
        encoder=f"{OUT}/pretrain/{{method}}/{{strategy}}/encoder.pt",
        history=f"{OUT}/pretrain/{{method}}/{{strategy}}/history.csv",
        meta=f"{OUT}/pretrain/{{method}}/{{strategy}}/history.json",
    params:
        opts=pretrain_opts,
        launcher=pretrain_launcher,
        checkpoint=f"{OUT}/pretrain/{{method}}/{{strategy}}/checkpoint.pt",
    log:
        "logs/pretrain/{method}_{strategy}.log",
    benchmark:
        "benchmarks/pretrain/{method}_{strategy}.tsv"
    threads: threads_for("pretrain")
    resources:
        gpu=config["pretrain"]["processes"],
    conda:
        CONDA_ENV
    shell:
        PYTHONPATH + "{params.launcher} --real {input.real} --out {output.encoder} --history {output.history}"
        " --method {wildcards.method} --strategy {wildcards.strategy} {params.opts}"
        " --checkpoint {params.checkpoint}"
        " " + common_args("pretrain") + " > {log} 2>&1"


rule linear_eval:
    input:
        encoder=f"{OUT}/pretrain/{{method}}/{{strategy}}/encoder.pt",
        train=f"{OUT}/real/train.npz",
        test=f"{OUT}/real/test.npz",
    output:
        f"{OUT}/linear/{{method}}/{{strategy}}.json",
    params:
        l=config["linear_eval"],
    log:
        "logs/linear_eval/{method}_{strategy}.log",
    benchmark:
        "benchmarks/linear_eval/{method}_{strategy}.tsv"
    threads: threads_for("linear_eval")
    resources:
        gpu=1,
    conda:
        CONDA_ENV
    shell:
        STAGE + "linear_eval --encoder {input.encoder} --train {input.train} --test {input.test}"
        " --out {output} --epochs {params.l[epochs]} --batch-size {params.l[batch_size]}"
        " --lr {params.l[lr]} --weight-decay {params.l[weight_decay]}"
        " " + common_args("linear_eval") + " > {log} 2>&1"
