rule dataset:
    input:
        code=code("dataset"),
        params=slices("dataset@{env}", "dataset"),
    output:
        minari=directory("data/dataset/{env}/minari"),
        stats="data/dataset/{env}/stats.json",
    params:
        args=PARAMS_ARG,
    conda:
        "../envs/cfgrl.yaml"
    log:
        "logs/dataset/{env}.log",
    threads: THREADS
    resources:
        mem_mb=6000,
        runtime=120,
    shell:
        "OMP_NUM_THREADS={threads} python -m pipeline_steps.rl.dataset --env {wildcards.env}{params.args} > {log} 2>&1"
