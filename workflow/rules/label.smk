rule label:
    input:
        code=code("label"),
        dataset="data/dataset/{env}/minari",
        params=slices("label@{env}-{seed}", "label", "runtime"),
    output:
        labels="data/label/{env}/seed{seed}/labels.npz",
        train_log="data/label/{env}/seed{seed}/train_log.csv",
        critic="data/label/{env}/seed{seed}/critic.pt",
        metrics="data/label/{env}/seed{seed}/metrics.json",
    params:
        args=PARAMS_ARG,
    conda:
        "../envs/cfgrl.yaml"
    log:
        "logs/label/{env}/seed{seed}.log",
    threads: THREADS
    resources:
        mem_mb=6000,
        runtime=240,
    shell:
        "OMP_NUM_THREADS={threads} python -m pipeline_steps.rl.label --env {wildcards.env} --seed {wildcards.seed}"
        "{params.args} > {log} 2>&1"
