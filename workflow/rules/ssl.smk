CELL = f"{OUT}/pretrain/{{method}}/{{variant}}/seed{{seed}}"
ONLINE = "online" in DESIGN.protocols


def pretrain_inputs(wildcards):
    inputs = {"real": f"{OUT}/dataset/real"}
    if DESIGN.settings(wildcards.variant)["generated"]:
        inputs["generated"] = f"{OUT}/dataset/generated"
    if ONLINE and wildcards.variant != RANDOM_INIT:
        inputs["test"] = f"{OUT}/real/test.npz"
    return inputs


def pretrain_opts(wildcards, input, output):
    s = DESIGN.settings(wildcards.variant)
    p = config["pretrain"]
    steps = 0 if wildcards.variant == RANDOM_INIT else p["steps"]
    method_args = p["method_args"].get(wildcards.method, {})
    online = {}
    if output.get("online"):
        online = {"test": input.test, "out": output.online, **config["linear_eval"]["online"]}
    return " ".join([
        opt("--generated", input.get("generated")),
        opt("--dup", s["dup"]),
        opt("--augmentation", s["augmentation"]),
        opt("--crop-min-scale", s.get("crop_min_scale")),
        opt("--jitter-strength", s.get("jitter_strength")),
        opt("--widths", p["backbone"]["widths"]),
        opt("--blocks", p["backbone"]["blocks"]),
        opt("--stem-padding", p["backbone"].get("stem_padding")),
        opt("--steps", steps),
        *(opt(f"--{k.replace('_', '-')}", p[k]) for k in
          ("batch_size", "optimizer", "lr", "weight_decay", "warmup_steps", "precision",
           "checkpoint_every")),
        *(opt("--method-arg", f"{k}={json.dumps(v)}") for k, v in method_args.items()),
        *(opt(f"--online-{k}", v) for k, v in online.items()),
    ])


def pretrain_launcher(wildcards):
    n = config["pretrain"]["processes"]
    if n == 1 or wildcards.variant == RANDOM_INIT:
        return "python -m pipeline.pretrain"
    return f"torchrun --standalone --nproc_per_node {n} -m pipeline.pretrain"


PRETRAIN_SHELL = (
    PYTHONPATH + GPU_SLOTS + "{params.launcher} --real {input.real} --out {output.encoder}"
    " --history {output.history} --method {wildcards.method} --strategy {wildcards.variant}"
    " --seed {wildcards.seed} {params.opts} --checkpoint {params.checkpoint}"
    " " + common_args("pretrain") + " > {log} 2>&1"
)


rule pretrain:
    input:
        unpack(pretrain_inputs),
    output:
        encoder=f"{CELL}/encoder.pt",
        history=f"{CELL}/history.csv",
        meta=f"{CELL}/history.json",
        **({"online": f"{CELL}/online.json"} if ONLINE else {}),
    wildcard_constraints:
        variant=f"(?!{RANDOM_INIT}/)[^/]+",
        seed=r"\d+",
    params:
        opts=pretrain_opts,
        launcher=pretrain_launcher,
        checkpoint=f"{CELL}/checkpoint.pt",
    log:
        "logs/pretrain/{method}/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/pretrain/{method}/{variant}/seed{seed}.tsv"
    threads: threads_for("pretrain")
    resources:
        gpu=config["pretrain"]["processes"],
    conda:
        CONDA_ENV
    shell:
        PRETRAIN_SHELL


# The untrained encoder (the initialisation pretraining starts from with this seed): a baseline.
use rule pretrain as init_encoder with:
    output:
        encoder=f"{CELL}/encoder.pt",
        history=f"{CELL}/history.csv",
        meta=f"{CELL}/history.json",
    wildcard_constraints:
        variant=RANDOM_INIT,
        seed=r"\d+",
    resources:
        gpu=1,


rule linear_eval:
    input:
        encoder=f"{CELL}/encoder.pt",
        train=f"{OUT}/real/train.npz",
        test=f"{OUT}/real/test.npz",
    output:
        f"{OUT}/linear/{{method}}/{{variant}}/seed{{seed}}/{{protocol}}.json",
    wildcard_constraints:
        protocol="offline|features",
        seed=r"\d+",
    params:
        l=lambda wc: config["linear_eval"][wc.protocol],
    log:
        "logs/linear_eval/{method}/{variant}/seed{seed}_{protocol}.log",
    benchmark:
        "benchmarks/linear_eval/{method}/{variant}/seed{seed}_{protocol}.tsv"
    threads: threads_for("linear_eval")
    resources:
        gpu=1,
    conda:
        CONDA_ENV
    shell:
        GPU_STAGE + "linear_eval --protocol {wildcards.protocol} --encoder {input.encoder}"
        " --train {input.train} --test {input.test} --out {output} --seed {wildcards.seed}"
        " --epochs {params.l[epochs]} --batch-size {params.l[batch_size]}"
        " --lr {params.l[lr]} --weight-decay {params.l[weight_decay]}"
        " " + common_args("linear_eval") + " > {log} 2>&1"
