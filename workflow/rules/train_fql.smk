# FQL on the label stage's frozen critic and train_cfgrl's frozen flow BC (their checkpoints are inputs)
rule train_fql:
    input:
        code=code("train_fql"),
        dataset="data/dataset/{env}/minari",
        critic="data/label/{env}/seed{seed}/critic.pt",
        teacher="data/train_cfgrl/{env}/seed{seed}/policy.pt",
        params=slices("train_fql@{env}-{seed}", "train_fql", "runtime"),
    output:
        fql_outputs("{env}", "{seed}"),
    params:
        args=PARAMS_ARG,
    conda:
        "../envs/cfgrl.yaml"
    log:
        "logs/train_fql/{env}/seed{seed}.log",
    threads: THREADS
    resources:
        mem_mb=6000,
        runtime=240,
    shell:
        "OMP_NUM_THREADS={threads} python -m pipeline_steps.rl.train_fql --env {wildcards.env} --seed {wildcards.seed}"
        "{params.args} > {log} 2>&1"
