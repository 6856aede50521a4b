CELL = f"{OUT}/pretrain/{{method}}/{{variant}}/seed{{seed}}"
ONLINE = PATHS.online


PRETRAIN_SHELL = (
    PYTHONPATH + GPU_SLOTS + "{params.launcher} --real {input.real} --out {output.encoder}"
    " --history {output.history} --method {wildcards.method} --strategy {wildcards.variant}"
    " --seed {wildcards.seed} {params.opts} --checkpoint {params.checkpoint} {params.speed}"
    + RUNTIME + LOG
)


rule pretrain:
    input:
        unpack(lambda wc: packed(PATHS.pretrain_inputs(wc.variant))),
        repack=lambda wc: after_repack(PATHS.pretrain_inputs(wc.variant)),
    output:
        encoder=f"{CELL}/encoder.pt",
        history=f"{CELL}/history.csv",
        meta=f"{CELL}/history.json",
        **({"online": f"{CELL}/online.json"} if ONLINE else {}),
    wildcard_constraints:
        variant=f"(?!(?:{RANDOM_INIT}|{AUTO})/)[^/]+",  # auto: search.smk's auto_pretrain
        seed=r"\d+",
    params:
        # a function of the wildcards only, so that Snakemake's params check sees every setting
        opts=lambda wc: pretrain_args(config, DESIGN, wc.method, wc.variant, wc.seed),
        speed=untracked(pretrain_untracked_args(config)),
        device=untracked(DEVICE),
        launcher=lambda wc: pretrain_launcher(config, wc.variant),
        checkpoint=f"{CELL}/checkpoint.pt",
    log:
        LOGS + "pretrain/{method}/{variant}/seed{seed}.log",
    benchmark:
        BENCHMARKS + "pretrain/{method}/{variant}/seed{seed}.tsv"
    threads: threads_for(config, "pretrain")
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
        l=lambda wc: settings(config["linear_eval"][wc.protocol]),
        device=untracked(DEVICE),
    log:
        LOGS + "linear_eval/{method}/{variant}/seed{seed}_{protocol}.log",
    benchmark:
        BENCHMARKS + "linear_eval/{method}/{variant}/seed{seed}_{protocol}.tsv"
    threads: threads_for(config, "linear_eval")
    resources:
        gpu=1,
    conda:
        CONDA_ENV
    shell:
        GPU_STAGE + "linear_eval --protocol {wildcards.protocol} --encoder {input.encoder}"
        " --train {input.train} --test {input.test} --out {output} --seed {wildcards.seed}"
        " --epochs {params.l[epochs]} --batch-size {params.l[batch_size]}"
        " --lr {params.l[lr]} --weight-decay {params.l[weight_decay]}"
        + RUNTIME + LOG
