rule prepare_real:
    output:
        train=f"{OUT}/real/train.npz",
        test=f"{OUT}/real/test.npz",
    params:
        real=config["real"],
        opts=lambda wc: " ".join([
            opt("--root", config["real"]["root"]),
            opt("--download", config["real"]["download"]),
        ]),
    log:
        "logs/prepare_real.log",
    benchmark:
        "benchmarks/prepare_real.tsv"
    threads: threads_for("prepare_real")
    conda:
        CONDA_ENV
    shell:
        STAGE + "prepare_real --source {params.real[source]} {params.opts}"
        " --resolution {params.real[resolution]} --test-fraction {params.real[test_fraction]}"
        " --seed {params.real[seed]} --train-out {output.train} --test-out {output.test}"
        " " + common_args("prepare_real") + " > {log} 2>&1"


rule pack:
    input:
        lambda wc: [f"{OUT}/real/train.npz"] if wc.part == "real" else shard_files(),
    output:
        directory(f"{OUT}/dataset/{{part}}"),
    wildcard_constraints:
        part="real|generated",
    log:
        "logs/pack_{part}.log",
    benchmark:
        "benchmarks/pack_{part}.tsv"
    conda:
        CONDA_ENV
    shell:
        STAGE + "pack --part {wildcards.part} --inputs {input} --out {output} > {log} 2>&1"
