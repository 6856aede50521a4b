# Pretraining: one encoder per cell (method × strategy × seed), evaluated by the online probe
# inside it and by linear_eval's offline and features protocols after it. search.smk's
# search_train and auto_pretrain run the same stage with the same command (common.smk's
# PRETRAIN_SHELL).


rule pretrain:
    input:
        unpack(lambda wc: packed(PATHS.pretrain_inputs(wc.strategy))),
        repack=lambda wc: after_repack(PATHS.pretrain_inputs(wc.strategy)),
    output:
        **PATHS.cell_files(),
        **({"online": PATHS.result("{method}", "{strategy}", "{seed}", "online"),
            "online_record": PATHS.record(
                PATHS.result("{method}", "{strategy}", "{seed}", "online"))}
           if ONLINE else {}),
    wildcard_constraints:
        strategy=f"(?!(?:{RANDOM_INIT}|{AUTO})/)[^/]+",  # auto: search.smk's auto_pretrain
        seed=r"\d+",
    params:
        # a function of the wildcards only, so that Snakemake's params check sees every setting
        opts=lambda wc: pretrain_args(config, DESIGN, wc.method, wc.strategy, wc.seed),
        speed=untracked(pretrain_untracked_args(config)),
        track=tracking(config, "pretrain/{method}/{strategy}/seed{seed}", log_every=True),
        device=untracked(DEVICE),
        launcher=lambda wc: pretrain_launcher(config, wc.strategy),
        checkpoint=PATHS.cell_checkpoint(),
    log:
        os.path.join(LOGS, "pretrain/{method}/{strategy}/seed{seed}.log"),
    benchmark:
        os.path.join(BENCHMARKS, "pretrain/{method}/{strategy}/seed{seed}.tsv")
    threads: threads_for(config, "pretrain")
    resources:
        gpu=config["pretrain"]["processes"],
    conda:
        CONDA_ENV
    shell:
        PRETRAIN_SHELL


# The untrained encoder (the initialisation pretraining starts from with this seed): a baseline.
# It trains nothing (--steps 0; the weights are made on the CPU either way), so it asks for no
# GPU: gpu_slots hides the devices, and on SLURM it runs in the CPU partition.
use rule pretrain as init_encoder with:
    output:
        **PATHS.cell_files(),
    wildcard_constraints:
        strategy=RANDOM_INIT,
        seed=r"\d+",
    resources:
        gpu=0,


rule linear_eval:
    input:
        encoder=rules.pretrain.output.encoder,
        train=rules.prepare_real.output.train,
        test=rules.prepare_real.output.test,
    output:
        result=PATHS.result("{method}", "{strategy}", "{seed}", "{protocol}"),
        record=PATHS.record(PATHS.result("{method}", "{strategy}", "{seed}", "{protocol}")),
    wildcard_constraints:
        protocol="offline|features",
        seed=r"\d+",
    params:
        opts=lambda wc: linear_eval_args(config, wc.protocol),
        track=tracking(config, "linear_eval/{method}/{strategy}/seed{seed}/{protocol}"),
        device=untracked(DEVICE),
    log:
        os.path.join(LOGS, "linear_eval/{method}/{strategy}/seed{seed}_{protocol}.log"),
    benchmark:
        os.path.join(BENCHMARKS, "linear_eval/{method}/{strategy}/seed{seed}_{protocol}.tsv")
    threads: threads_for(config, "linear_eval")
    resources:
        gpu=1,
    conda:
        CONDA_ENV
    shell:
        job_shell(
            "python -m pipeline.linear_eval --protocol {wildcards.protocol}"
            " --encoder {input.encoder} --train {input.train} --test {input.test} --out {output.result}"
            " --seed {wildcards.seed} {params.opts} {params.track}",
            gpu=True, runtime=True,
        )
