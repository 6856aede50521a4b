rule report:
    input:
        linear=[f"{OUT}/linear/{m}/{s}.json" for m, s in runs()],
        histories=[f"{OUT}/pretrain/{m}/{s}/history.csv" for m, s in runs() if s != "random_init"],
        fid=f"{OUT}/fid.json",
        real=f"{OUT}/real/train.npz",
        generated=shard_files()[0],
    output:
        summary=f"{OUT}/summary.json",
        table=report(f"{OUT}/summary.md", category="Results", labels={"figure": "accuracy table"}),
        samples=report(f"{OUT}/samples.png", category="Samples", labels={"figure": "real vs generated"}),
        losses=report(f"{OUT}/losses.png", category="Training", labels={"figure": "loss curves"}),
    log:
        "logs/report.log",
    conda:
        CONDA_ENV
    shell:
        STAGE + "report --linear {input.linear} --histories {input.histories} --fid {input.fid}"
        " --real {input.real} --generated {input.generated} --summary {output.summary}"
        " --table {output.table} --samples {output.samples} --losses {output.losses} > {log} 2>&1"
