rule evaluate:
    input:
        code=code("evaluate"),
        dataset="data/dataset/{env}/minari",
        cfgrl="data/train_cfgrl/{env}/seed{seed}/policy.pt",
        awr="data/train_awr/{env}/seed{seed}/policies.pt",
        awf="data/train_awf/{env}/seed{seed}/policies.pt",
        params=slices("evaluate@{env}-{seed}", "evaluate", "runtime"),
    output:
        episodes="data/evaluate/{env}/seed{seed}/episodes.csv",
        summary="data/evaluate/{env}/seed{seed}/summary.csv",
        metrics="data/evaluate/{env}/seed{seed}/metrics.json",
    params:
        args=PARAMS_ARG,
    conda:
        "../envs/cfgrl.yaml"
    log:
        "logs/evaluate/{env}/seed{seed}.log",
    threads: THREADS
    resources:
        mem_mb=8000,
        runtime=120,
    shell:
        "OMP_NUM_THREADS={threads} python -m pipeline_steps.rl.evaluate --env {wildcards.env} --seed {wildcards.seed}"
        "{params.args} > {log} 2>&1"
