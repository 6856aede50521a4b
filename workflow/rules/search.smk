# The `auto` strategy's search (config.yaml's `auto`; the plan: pipeline/dag/search_plan.py).
# Round r trains the candidates that round r-1 kept up to SEARCH.schedule.steps[r], resuming
# round r-1's state; the checkpoint search_select scores them on a validation split of the real
# training data and writes round{r}.json, whose survivors decide round r+1's jobs. The last
# survivor trains to pretrain.steps as the `auto` cell, evaluated like every other cell. No job
# here reads the test split (tests/test_search_workflow.py runs the search with a garbage one).
# The files: PATHS's search_files and search_choice (patterns), SEARCH's state, encoder and
# round_file (named ones).
# Its input functions (survivors, winner, ...): common.smk.


# One round of one candidate (the `strategy` wildcard: the candidate, recorded as the run's strategy);
# its checkpoint, kept, is the state the next round resumes from.
rule search_train:
    input:
        unpack(lambda wc: packed(SEARCH.train_inputs(wc.method, wc.seed, int(wc.round),
                                                  wc.strategy))),
        repack=lambda wc: after_repack(SEARCH.train_inputs(wc.method, wc.seed, int(wc.round),
                                                           wc.strategy)),
    output:
        **PATHS.search_files(),
    wildcard_constraints:
        round=r"\d+",
        seed=r"\d+",
    params:
        opts=lambda wc: SEARCH.train_args(wc.method, wc.seed, int(wc.round), wc.strategy),
        speed=untracked(pretrain_untracked_args(config)),
        track=tracking(config, "search/{method}/seed{seed}/round{round}/{strategy}",
                       log_every=True),
        device=untracked(DEVICE),
        launcher=lambda wc: pretrain_launcher(config, wc.strategy),
        checkpoint=PATHS.search_files()["state"],
    log:
        os.path.join(LOGS, "search/{method}/seed{seed}/round{round}/{strategy}.log"),
    benchmark:
        os.path.join(BENCHMARKS, "search/{method}/seed{seed}/round{round}/{strategy}.tsv")
    threads: threads_for(config, "pretrain")
    resources:
        gpu=config["pretrain"]["processes"],
    conda:
        CONDA_ENV
    shell:
        PRETRAIN_SHELL


checkpoint search_select:
    input:
        encoders=lambda wc: [SEARCH.encoder(wc.method, wc.seed, int(wc.round), c)
                             for c in survivors(wc, int(wc.round))],
        train=rules.prepare_real.output.train,
    output:
        PATHS.search_choice(),
    wildcard_constraints:
        round=r"\d+",
        seed=r"\d+",
    params:
        opts=lambda wc: SEARCH.select_args(int(wc.round)),
        # the candidates' names are their encoders' folders (the inputs, so tracked as such)
        names=lambda wc, input: " ".join(Path(e).parent.name for e in input.encoders),
        device=untracked(DEVICE),
    log:
        os.path.join(LOGS, "search/{method}/seed{seed}/round{round}.log"),
    benchmark:
        os.path.join(BENCHMARKS, "search_select/{method}/seed{seed}/round{round}.tsv")
    threads: threads_for(config, "linear_eval")
    resources:
        gpu=1,
    conda:
        CONDA_ENV
    shell:
        job_shell(
            "python -m pipeline.search_select --encoders {input.encoders} --candidates {params.names}"
            " --train {input.train} {params.opts} --out {output}",
            gpu=True, runtime=True,
        )


# The winner's last round: from its state at the last choice to pretrain.steps, as a plain run
# of its settings (the same schedules from step 0), written where every cell's encoder is.
rule auto_pretrain:
    input:
        # one function per input: until the last choice is made, only the winner's inputs wait
        # for it. The choices themselves are no input: a rescored round that keeps the same
        # winner reruns nothing here (a new winner is a new input and new options). The packed
        # data as every other pretraining job has them (data.smk's packed, after_repack): a
        # repack whose content equals the recorded one reruns no auto cell.
        unpack(lambda wc: packed({"real": PATHS.dataset("real")})),
        winner=lambda wc: files_but_real(packed(winner_inputs(wc))),
        repack=lambda wc: after_repack(winner_inputs(wc)),
    output:
        **PATHS.cell_files(),
    wildcard_constraints:
        strategy=AUTO,
        seed=r"\d+",
    params:
        opts=lambda wc: SEARCH.train_args(wc.method, wc.seed, SEARCH.last, winner(wc)),
        speed=untracked(pretrain_untracked_args(config)),
        track=tracking(config, "pretrain/{method}/{strategy}/seed{seed}", log_every=True),
        device=untracked(DEVICE),
        launcher=lambda wc: pretrain_launcher(config, AUTO),
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
