# generator.source npz: generated images brought as npz files (the authors' EDM/STF sets) are cut
# into the sample shards by one job; no generator is trained and nothing is sampled, and FID,
# packing and pretraining read the shards as they read sampled ones.
if config["generator"]["source"] == "npz":

    ruleorder: cut_npz > sample

    rule cut_npz:
        input:
            [str(f) for f in npz_files(config["generator"]["path"])],
            # their content (records.input_record): a file replaced in place reruns the cut
            INPUTS.records()["generated_npz"],
        output:
            PATHS.shard_files() + PATHS.all_shard_data(),
        params:
            opts=cut_npz_args(config, PATHS.num_generated()),
            manifests=PATHS.shard_files(),
        log:
            os.path.join(LOGS, "cut_npz.log"),
        benchmark:
            os.path.join(BENCHMARKS, "cut_npz.tsv")
        conda:
            CONDA_ENV
        shell:
            job_shell(
                "python -m pipeline.cut_npz {params.opts} --out {params.manifests}",
            )
