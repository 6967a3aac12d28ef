# train_cfgrl's network keys reach this rule too (the velocity net is CFGRL's), as in dvc.yaml
rule train_awf:
    input:
        code=code("train_awf"),
        dataset="data/dataset/{env}/minari",
        labels="data/label/{env}/seed{seed}/labels.npz",
        params=slices(
            "train_awf@{env}-{seed}",
            "train_awf",
            *(f"train_cfgrl.{k}" for k in ("hidden", "layer_norm", "lr", "time_sampling", "flow_steps")),
            *(f"train_cfgrl.{k}" for k in ("time_emb_dim", "normalize_obs")),
            "runtime",
        ),
    output:
        policies="data/train_awf/{env}/seed{seed}/policies.pt",
        train_log="data/train_awf/{env}/seed{seed}/train_log.csv",
        metrics="data/train_awf/{env}/seed{seed}/metrics.json",
    params:
        args=PARAMS_ARG,
    conda:
        "../envs/cfgrl.yaml"
    log:
        "logs/train_awf/{env}/seed{seed}.log",
    threads: THREADS
    resources:
        mem_mb=6000,
        runtime=240,
    shell:
        "OMP_NUM_THREADS={threads} python -m pipeline_steps.rl.train_awf --env {wildcards.env} --seed {wildcards.seed}"
        "{params.args} > {log} 2>&1"
