rule train_cfgrl:
    input:
        code=[
            "pipeline_steps/train_cfgrl.py",
            "pipeline_steps/evaluate.py",
            "pipeline_steps/rollouts.py",
            "pipeline_steps/envs.py",
            "pipeline_steps/exorl_tasks.py",
            "pipeline_steps/ogbench_tasks.py",
            "pipeline_steps/gc_envs.py",
            "pipeline_steps/config.py",
            "pipeline_steps/data.py",
            "pipeline_steps/algorithms/cfgrl.py",
            "pipeline_steps/algorithms/common.py",
            "pipeline_steps/training.py",
        ],
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
        "OMP_NUM_THREADS={threads} python -m pipeline_steps.train_cfgrl --env {wildcards.env} --seed {wildcards.seed}"
        "{params.args} > {log} 2>&1"
