rule train_cfgrl:
    input:
        code=code("train_cfgrl"),
        dataset="data/dataset/{env}/minari",
        labels="data/label/{env}/seed{seed}/labels.npz",
        params=slices("train_cfgrl@{env}-{seed}", "train_cfgrl", "runtime"),
    output:
        policy="data/train_cfgrl/{env}/seed{seed}/policy.pt",
        train_log="data/train_cfgrl/{env}/seed{seed}/train_log.csv",
        metrics="data/train_cfgrl/{env}/seed{seed}/metrics.json",
    params:
        args=PARAMS_ARG,
    conda:
        "../envs/cfgrl.yaml"
    log:
        "logs/train_cfgrl/{env}/seed{seed}.log",
    threads: THREADS
    resources:
        mem_mb=6000,
        runtime=240,
    shell:
        "OMP_NUM_THREADS={threads} python -m pipeline_steps.rl.train_cfgrl --env {wildcards.env} --seed {wildcards.seed}"
        "{params.args} > {log} 2>&1"
