# one rendered episode per policy, on the first seed (dvc.yaml's render stage depends on the directories
# data/{train_cfgrl,train_awr,evaluate}/<env>: here, every file the upstream stages write there)
rule render:
    input:
        code=code("render"),
        train_cfgrl=lambda wc: [f for s in SEEDS for f in cfgrl_outputs(wc.env, s)],
        train_awr=lambda wc: [f for s in SEEDS for f in awr_outputs(wc.env, s)],
        evaluate=lambda wc: [f for s in SEEDS for f in evaluate_outputs(wc.env, s)],
        params=slices("render@{env}", "render", "evaluate.max_steps", "seeds", "runtime"),
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
        "OMP_NUM_THREADS={threads} python -m pipeline_steps.rl.render --env {wildcards.env}{params.args} > {log} 2>&1"
