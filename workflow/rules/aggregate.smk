# every env side by side, across seeds (dvc.yaml: the aggregate stage, which depends on data/plots)
rule aggregate:
    input:
        code=code("aggregate"),
        plots=[f for env in ENVS for f in plot_outputs(env)],
        gc_plots=[f for env in GC_ENVS for f in gc_plot_outputs(env)],
        params=slices("aggregate", "envs", "gc_envs", "seeds"),
    output:
        gc_results="data/aggregate/gc_results.csv",
        results="data/aggregate/results.csv",
        summary="data/aggregate/summary.csv",
        summary_md="data/aggregate/summary.md",
        figure="data/aggregate/return_vs_w.png",
        metrics="data/aggregate/metrics.json",
    params:
        args=PARAMS_ARG,
    conda:
        "../envs/cfgrl.yaml"
    log:
        "logs/aggregate.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "OMP_NUM_THREADS={threads} python -m pipeline_steps.both.aggregate{params.args} > {log} 2>&1"
