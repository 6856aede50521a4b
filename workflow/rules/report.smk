SWEEP_PLOTS = [f"{OUT}/sweeps/{sw.strategy}_{sw.setting}.png" for sw in DESIGN.sweeps]
SEARCH_ROUNDS = [f for m in DESIGN.methods for s in DESIGN.seeds
                 for f in SEARCH.round_files(m, s)] if SEARCH else []
SEARCH_PLOT = {"search": report(f"{OUT}/search.png", category="Search",
                                caption="../report/search.rst",
                                labels={"figure": "auto search"})} if SEARCH else {}
CURVES = {"online": report(f"{OUT}/online.png", category="Training", caption="../report/online.rst",
                           labels={"figure": "online probe accuracy"})} if ONLINE else {}


rule report:
    input:
        results=PATHS.evaluation_files(),
        histories=PATHS.history_files(),
        # the study's cells and the sampler: a new file (so a rerun) when they change
        design=PATHS.design_file(SEARCH.spec() if SEARCH else None),
        fid=rules.fid.output[0],
        real=rules.prepare_real.output.train,
        generated=PATHS.shard_files()[0],
        shards=PATHS.shard_files(),
        scores=PATHS.shard_quality_files(),
        search_rounds=SEARCH_ROUNDS,
        generator_record=[ASSETS["generator"]["record"]] if "generator" in ASSETS else [],
    output:
        summary=f"{OUT}/summary.json",
        table=f"{OUT}/summary.md",
        page=report(f"{OUT}/summary.html", category="Results", caption="../report/summary.rst",
                    labels={"figure": "accuracy table, FID and sampler"}),
        samples=report(f"{OUT}/samples.png", category="Samples", caption="../report/samples.rst",
                       labels={"figure": "real vs generated"}),
        losses=report(f"{OUT}/losses.png", category="Training", caption="../report/losses.rst",
                      labels={"figure": "pretraining loss"}),
        selection=report(f"{OUT}/selection.png", category="Samples",
                         caption="../report/selection.rst",
                         labels={"figure": "generated images by quality score"}),
        sweeps=[report(f, category="Sweeps", caption="../report/sweep.rst",
                       labels={"figure": Path(f).stem}) for f in SWEEP_PLOTS],
        **CURVES,
        **SEARCH_PLOT,
    params:
        curves=lambda wc, output: opt("--online-curves", output.get("online")),
        record=lambda wc, input: opt("--generator-record", list(input.generator_record) or None),
        search=lambda wc, input, output: opts(opt("--search-rounds", list(input.search_rounds) or None),
                                              opt("--search-plot", output.get("search"))),
    log:
        LOGS + "report.log",
    benchmark:
        BENCHMARKS + "report.tsv"
    conda:
        CONDA_ENV
    shell:
        "python -m pipeline.report --results {input.results} --histories {input.histories}"
        " --design {input.design} --fid {input.fid} --real {input.real}"
        " --generated {input.generated} --summary {output.summary} --table {output.table}"
        " --page {output.page} --samples {output.samples} --losses {output.losses}"
        " --sweep-plots {output.sweeps} --shards {input.shards} --scores {input.scores}"
        " --selection {output.selection} {params.curves} {params.search} {params.record}" + LOG
