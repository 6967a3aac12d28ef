# The goal-conditioned half (OGBench, paper Sec. 6): dvc.yaml's gc_dataset, train_gc, gc_evaluate and
# gc_plot stages, on the envs of params gc_envs.


wildcard_constraints:
    gcenv=r"[a-z0-9]+(?:-[a-z0-9]+)+",
    algo="|".join(GC_ALGOS),


rule gc_dataset:
    input:
        code=code("gc_dataset"),
        params=slices("gc_dataset@{gcenv}", "gc_dataset"),
    output:
        minari=directory("data/gc_dataset/{gcenv}/minari"),
        ogbench=directory("data/gc_dataset/{gcenv}/ogbench"),
        stats="data/gc_dataset/{gcenv}/stats.json",
    params:
        args=PARAMS_ARG,
    conda:
        "../envs/cfgrl.yaml"
    log:
        "logs/gc_dataset/{gcenv}.log",
    threads: THREADS
    resources:
        mem_mb=6000,
        runtime=180,
    shell:
        "OMP_NUM_THREADS={threads} python -m pipeline_steps.gc.dataset --env {wildcards.gcenv}{params.args} > {log} 2>&1"


rule train_gc:
    input:
        code=code("train_gc"),
        dataset="data/gc_dataset/{gcenv}/minari",
        params=slices("train_gc@{gcenv}-{seed}-{algo}", "train_gc", "runtime"),
    output:
        policy="data/train_gc/{gcenv}/{algo}/seed{seed}/policy.pt",
        train_log="data/train_gc/{gcenv}/{algo}/seed{seed}/train_log.csv",
        metrics="data/train_gc/{gcenv}/{algo}/seed{seed}/metrics.json",
    params:
        args=PARAMS_ARG,
    conda:
        "../envs/cfgrl.yaml"
    log:
        "logs/train_gc/{gcenv}/{algo}/seed{seed}.log",
    threads: THREADS
    resources:
        mem_mb=6000,
        runtime=240,
    shell:
        "OMP_NUM_THREADS={threads} python -m pipeline_steps.gc.train --env {wildcards.gcenv} --seed {wildcards.seed}"
        " --algo {wildcards.algo}{params.args} > {log} 2>&1"


rule gc_evaluate:
    input:
        code=code("gc_evaluate"),
        policies=expand("data/train_gc/{{gcenv}}/{algo}/seed{{seed}}/policy.pt", algo=GC_ALGOS),
        params=slices("gc_evaluate@{gcenv}-{seed}", "gc_evaluate", "gc_dataset.generate.maze_noise", "runtime"),
    output:
        gc_evaluate_outputs("{gcenv}", "{seed}"),
    params:
        args=PARAMS_ARG,
    conda:
        "../envs/cfgrl.yaml"
    log:
        "logs/gc_evaluate/{gcenv}/seed{seed}.log",
    threads: THREADS
    resources:
        mem_mb=8000,
        runtime=120,
    shell:
        "OMP_NUM_THREADS={threads} python -m pipeline_steps.gc.evaluate --env {wildcards.gcenv} --seed {wildcards.seed}"
        "{params.args} > {log} 2>&1"


# dvc.yaml's gc_plot depends on the directory data/gc_evaluate/<env>: every seed's outputs
rule gc_plot:
    input:
        code=code("gc_plot"),
        evaluate=lambda wc: [f for s in GC_SEEDS for f in gc_evaluate_outputs(wc.gcenv, s)],
        params=slices("gc_plot@{gcenv}", "gc_seeds"),
    output:
        gc_plot_outputs("{gcenv}"),
    params:
        args=PARAMS_ARG,
    conda:
        "../envs/cfgrl.yaml"
    log:
        "logs/gc_plot/{gcenv}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "OMP_NUM_THREADS={threads} python -m pipeline_steps.gc.plot --env {wildcards.gcenv}{params.args} > {log} 2>&1"
