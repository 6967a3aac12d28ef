# train_cfgrl's network keys reach this rule too (the velocity net is CFGRL's), as in dvc.yaml
AWF_NET_KEYS = ["hidden", "layer_norm", "lr", "time_sampling", "flow_steps", "time_emb_dim", "normalize_obs"]


rule train_awf:
    input:
        code=[
            "pipeline_steps/train_awf.py",
            "pipeline_steps/config.py",
            "pipeline_steps/data.py",
            "pipeline_steps/algorithms/awf.py",
            "pipeline_steps/algorithms/awr.py",
            "pipeline_steps/algorithms/cfgrl.py",
            "pipeline_steps/algorithms/common.py",
            "pipeline_steps/training.py",
        ],
        dataset="data/dataset/{env}/minari",
        labels="data/label/{env}/seed{seed}/labels.npz",
    output:
        policies="data/train_awf/{env}/seed{seed}/policies.pt",
        train_log="data/train_awf/{env}/seed{seed}/train_log.csv",
        metrics="data/train_awf/{env}/seed{seed}/metrics.json",
    params:
        train_awf=section("train_awf"),
        net={k: v for k, v in section("train_cfgrl").items() if k in AWF_NET_KEYS},
        runtime=section("runtime"),
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
        "OMP_NUM_THREADS={threads} python -m pipeline_steps.train_awf --env {wildcards.env} --seed {wildcards.seed}"
        "{params.args} > {log} 2>&1"
