"""Performance: the benchmark against torch (bench), the timing rules it follows (timing) and the GEMM floor
of a pass (gemm_floor). Kept out of the test run's measurements: tests assert correctness only."""
