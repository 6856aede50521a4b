# The external assets (pipeline/core/assets.py): a hub generator, CIFAR, the FID Inception
# weights, each fetched once by a local rule (on a cluster: on the host running Snakemake, where
# the network is) before any job that needs it; the jobs after it read only local files. An asset
# that is local already (generator.model a folder, real.download false, fid.weights set or pixel
# FID) has no fetch rule. `snakemake --cores 1 fetch --configfile FILE...` fetches them alone.
# (ASSETS, what is fetched where: common.smk.)
# What the one-line error tells the user to run where there is network: this run's own configs.
RETRY = untracked(fetch_retry(workflow.overwrite_configfiles, workflow.config_settings.config_args,
                              workflow.main_snakefile, workflow.workdir_init, os.getcwd()))


rule fetch:
    localrule: True
    input:
        INPUTS.fetch_records(),


if "generator" in ASSETS:

    rule fetch_generator:
        localrule: True
        output:
            folder=directory(ASSETS["generator"]["out"]),
            record=ASSETS["generator"]["record"],
        params:
            opts=fetch_generator_args(config),
            retry=RETRY,
        log:
            os.path.join(LOGS, "fetch/generator.log"),
        conda:
            CONDA_ENV
        shell:
            job_shell(
                "python -m pipeline.fetch --retry {params.retry:q} generator {params.opts}"
                " --out {output.folder} --record {output.record}",
            )


if "real" in ASSETS:

    rule fetch_real:
        localrule: True
        output:
            ASSETS["real"]["record"],
        params:
            opts=fetch_real_args(config),
            retry=RETRY,
        log:
            os.path.join(LOGS, "fetch/real.log"),
        conda:
            CONDA_ENV
        shell:
            job_shell(
                "python -m pipeline.fetch --retry {params.retry:q} real {params.opts}"
                " --record {output}",
            )


if "inception" in ASSETS:
    # The weights file lives in the torch.hub cache, outside the run (no output of the rule): a
    # record whose file is gone or resized (a damaged file deleted, as fid_stats' error advises)
    # is removed here, so that this rule, its output missing, runs again on the next run (a dry
    # run too, which then shows it). In the main process only: a cluster job parses this file
    # again, on a node that may not see the cache.
    if workflow.is_main_process:
        dropped = drop_stale_file_record(ASSETS["inception"]["record"], ASSETS["inception"]["out"])
        if dropped:
            print(f"fetch_inception: {dropped}", file=sys.stderr)

    rule fetch_inception:
        localrule: True
        output:
            ASSETS["inception"]["record"],
        params:
            # where torch.hub keeps it on this machine: a place, not a setting of the results
            weights=untracked(ASSETS["inception"]["out"]),
            retry=RETRY,
        log:
            os.path.join(LOGS, "fetch/inception.log"),
        conda:
            CONDA_ENV
        shell:
            job_shell(
                "python -m pipeline.fetch --retry {params.retry:q} inception --out {params.weights:q}"
                " --record {output}",
            )


if "dinov2" in ASSETS:
    # as fetch_inception: the file lives in the torch.hub cache, outside the run
    if workflow.is_main_process:
        dropped = drop_stale_file_record(ASSETS["dinov2"]["record"], ASSETS["dinov2"]["out"])
        if dropped:
            print(f"fetch_dinov2: {dropped}", file=sys.stderr)

    rule fetch_dinov2:
        localrule: True
        output:
            ASSETS["dinov2"]["record"],
        params:
            weights=untracked(ASSETS["dinov2"]["out"]),
            repo=ASSETS["dinov2"]["repo"],
            retry=RETRY,
        log:
            os.path.join(LOGS, "fetch/dinov2.log"),
        conda:
            CONDA_ENV
        shell:
            job_shell(
                "python -m pipeline.fetch --retry {params.retry:q} dinov2 --repo {params.repo:q}"
                " --out {params.weights:q} --record {output}",
            )
