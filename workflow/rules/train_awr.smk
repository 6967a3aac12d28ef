rule train_awr:
    input:
        code=code("train_awr"),
        dataset="data/dataset/{env}/minari",
        labels="data/label/{env}/seed{seed}/labels.npz",
        params=slices("train_awr@{env}-{seed}", "train_awr", "runtime"),
    output:
        policies="data/train_awr/{env}/seed{seed}/policies.pt",
        train_log="data/train_awr/{env}/seed{seed}/train_log.csv",
        metrics="data/train_awr/{env}/seed{seed}/metrics.json",
    params:
        args=PARAMS_ARG,
    conda:
        "../envs/cfgrl.yaml"
    log:
        "logs/train_awr/{env}/seed{seed}.log",
    threads: THREADS
    resources:
        mem_mb=6000,
        runtime=240,
    shell:
        "OMP_NUM_THREADS={threads} python -m pipeline_steps.rl.train_awr --env {wildcards.env} --seed {wildcards.seed}"
        "{params.args} > {log} 2>&1"
