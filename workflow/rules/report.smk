# The report's files: PATHS.report_file (by output name) and PATHS.sweep_plots.
SEARCH_ROUNDS = [f for m in DESIGN.methods for s in DESIGN.seeds
                 for f in SEARCH.round_files(m, s)] if SEARCH else []
SEARCH_PLOT = {"search": report(PATHS.report_file("search"), category="Search",
                                caption="../report/search.rst",
                                labels={"figure": "auto search"})} if SEARCH else {}
CURVES = {"online": report(PATHS.report_file("online"), category="Training",
                           caption="../report/online.rst",
                           labels={"figure": "online probe accuracy"})} if ONLINE else {}


rule report:
    input:
        results=PATHS.evaluation_files(),
        histories=PATHS.history_files(),
        # the study's cells and the sampler: a new file (so a rerun) when they change
        design=design_file(PATHS, SEARCH.spec() if SEARCH else None),
        fid=rules.fid.output.result,
        real=rules.prepare_real.output.train,
        generated=PATHS.shard_files()[0],
        shards=PATHS.shard_files(),
        scores=PATHS.shard_quality_files(),
        search_rounds=SEARCH_ROUNDS,
        generator_record=[rules.fetch_generator.output.record] if "generator" in ASSETS else [],
    output:
        # the headline figure: first in the report's Results and on its landing page
        # (workflow.rst embeds it), so the first screen shows the result
        results=report(PATHS.report_file("results"), category="Results",
                       caption="../report/results.rst",
                       labels={"figure": "headline: top-1 per strategy and protocol"}),
        results_svg=PATHS.report_file("results_svg"),
        summary=PATHS.report_file("summary"),
        summary_record=PATHS.record(PATHS.report_file("summary")),
        table=PATHS.report_file("table"),
        page=report(PATHS.report_file("page"), category="Results",
                    caption="../report/summary.rst",
                    labels={"figure": "accuracy table, FID and sampler"}),
        samples=report(PATHS.report_file("samples"), category="Samples",
                       caption="../report/samples.rst", labels={"figure": "real vs generated"}),
        losses=report(PATHS.report_file("losses"), category="Training",
                      caption="../report/losses.rst", labels={"figure": "pretraining loss"}),
        selection=report(PATHS.report_file("selection"), category="Samples",
                         caption="../report/selection.rst",
                         labels={"figure": "generated images by quality score"}),
        sweeps=[report(f, category="Sweeps", caption="../report/sweep.rst",
                       labels={"figure": Path(f).stem}) for f in PATHS.sweep_plots()],
        **CURVES,
        **SEARCH_PLOT,
    params:
        # from the inputs and outputs (derived params, untracked: the files are tracked as such)
        opts=lambda wc, input, output: report_args(
            online_curves=output.get("online"), search_rounds=input.search_rounds,
            search_plot=output.get("search"), generator_record=input.generator_record),
    log:
        os.path.join(LOGS, "report.log"),
    benchmark:
        os.path.join(BENCHMARKS, "report.tsv")
    conda:
        CONDA_ENV
    shell:
        job_shell(
            "python -m pipeline.report --results {input.results} --histories {input.histories}"
            " --design {input.design} --fid {input.fid} --real {input.real}"
            " --generated {input.generated} --summary {output.summary} --table {output.table}"
            " --page {output.page} --results-figure {output.results}"
            " --results-svg {output.results_svg} --samples {output.samples}"
            " --losses {output.losses}"
            " --sweep-plots {output.sweeps} --shards {input.shards} --scores {input.scores}"
            " --selection {output.selection} {params.opts}",
        )
