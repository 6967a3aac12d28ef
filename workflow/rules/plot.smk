# dvc.yaml's plot stage depends on the directories data/{label,train_*,evaluate*}/<env>: here, every
# file the upstream stages write there, for every seed of params
rule plot:
    input:
        code=code("plot"),
        stats="data/dataset/{env}/stats.json",
        label=lambda wc: [f for s in SEEDS for f in label_outputs(wc.env, s)],
        train_cfgrl=lambda wc: [f for s in SEEDS for f in cfgrl_outputs(wc.env, s)],
        train_awr=lambda wc: [f for s in SEEDS for f in awr_outputs(wc.env, s)],
        train_awf=lambda wc: [f for s in SEEDS for f in awf_outputs(wc.env, s)],
        evaluate=lambda wc: [f for s in SEEDS for f in evaluate_outputs(wc.env, s)],
        train_fql=lambda wc: [f for s in SEEDS for f in fql_outputs(wc.env, s)],
        evaluate_extraction=lambda wc: [f for s in SEEDS for f in evaluate_extraction_outputs(wc.env, s)],
        params=slices("plot@{env}", "seeds"),
    output:
        [f"data/plots/{{env}}/{f}" for f in PLOT_FILES],
    params:
        args=PARAMS_ARG,
    conda:
        "../envs/cfgrl.yaml"
    log:
        "logs/plot/{env}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "OMP_NUM_THREADS={threads} python -m pipeline_steps.rl.plot --env {wildcards.env}{params.args} > {log} 2>&1"
