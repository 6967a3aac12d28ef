# one rendered episode per policy, on the first seed (dvc.yaml's render stage depends on the directories
# data/{train_cfgrl,train_awr,evaluate}/<env>: here, every file the upstream stages write there)
rule render:
    input:
        code=[
            "pipeline_steps/render.py",
            "pipeline_steps/evaluate.py",
            "pipeline_steps/rollouts.py",
            "pipeline_steps/envs.py",
            "pipeline_steps/exorl_tasks.py",
            "pipeline_steps/ogbench_tasks.py",
            "pipeline_steps/gc_envs.py",
            "pipeline_steps/config.py",
            "pipeline_steps/train_cfgrl.py",
            "pipeline_steps/train_awr.py",
            "pipeline_steps/algorithms/cfgrl.py",
            "pipeline_steps/algorithms/awr.py",
            "pipeline_steps/algorithms/common.py",
        ],
        train_cfgrl=lambda wc: [f for s in SEEDS for f in cfgrl_outputs(wc.env, s)],
        train_awr=lambda wc: [f for s in SEEDS for f in awr_outputs(wc.env, s)],
        evaluate=lambda wc: [f for s in SEEDS for f in evaluate_outputs(wc.env, s)],
        params=slices("render@{env}", "render", "seeds", "runtime"),
    output:
        directory("data/render/{env}"),
    params:
        args=PARAMS_ARG,
    conda:
        "../envs/cfgrl.yaml"
    log:
        "logs/render/{env}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "OMP_NUM_THREADS={threads} python -m pipeline_steps.render --env {wildcards.env}{params.args} > {log} 2>&1"
