# rejection sampling from flow BC (IFQL / IDQL) and FQL, on the evaluate stage's start states and noise
rule evaluate_extraction:
    input:
        code=code("evaluate_extraction"),
        dataset="data/dataset/{env}/minari",
        cfgrl="data/train_cfgrl/{env}/seed{seed}/policy.pt",
        critic="data/label/{env}/seed{seed}/critic.pt",
        fql="data/train_fql/{env}/seed{seed}/policies.pt",
        awr="data/train_awr/{env}/seed{seed}/policies.pt",
        params=slices(
            "evaluate_extraction@{env}-{seed}",
            "extraction",
            "evaluate.episodes",
            "evaluate.max_steps",
            "evaluate.timing_repeats",
            "runtime",
        ),
    output:
        evaluate_extraction_outputs("{env}", "{seed}"),
    params:
        args=PARAMS_ARG,
    conda:
        "../envs/cfgrl.yaml"
    log:
        "logs/evaluate_extraction/{env}/seed{seed}.log",
    threads: THREADS
    resources:
        mem_mb=8000,
        runtime=120,
    shell:
        "OMP_NUM_THREADS={threads} python -m pipeline_steps.rl.evaluate_extraction --env {wildcards.env} --seed {wildcards.seed}"
        "{params.args} > {log} 2>&1"
