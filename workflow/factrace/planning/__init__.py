"""Planning a run before it runs: the cost model of tracing (``cost``), the GPU-hour estimate of a config
(``estimate``), each rule's Slurm resources (``resources``), the job plan (``plan``), and the benchmarks that
check the cost model against measured runs (``bench_tracing``: engine vs reference; ``bench_plan``)."""
