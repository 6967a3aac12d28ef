rule dataset:
    input:
        code=[
            "pipeline_steps/dataset.py",
            "pipeline_steps/gc_dataset.py",
            "pipeline_steps/data.py",
            "pipeline_steps/envs.py",
            "pipeline_steps/exorl_tasks.py",
            "pipeline_steps/ogbench_tasks.py",
            "pipeline_steps/gc_envs.py",
            "pipeline_steps/config.py",
            "pipeline_steps/algorithms/sac.py",
            "pipeline_steps/algorithms/common.py",
        ],
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
        "OMP_NUM_THREADS={threads} python -m pipeline_steps.dataset --env {wildcards.env}{params.args} > {log} 2>&1"
