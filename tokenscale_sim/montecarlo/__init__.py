"""The Monte Carlo engine: structure-aware samplers, streaming moments, checkpoints, simulate.

Modules, in pipeline order:

- :mod:`.kernel_draws`: per-kernel draws of iid columns ``N(0, K)`` along positions;
- :mod:`.sampling`: token models and the samplers of branch tokens built from them;
- :mod:`.moments`: Chan/Welford streaming moments and their summary (mean, std, se, band);
- :mod:`.checkpoints`: replicate accumulators, checkpoint files, multi-process plumbing;
- :mod:`.simulation`: :func:`simulate`, the chunked, sharded, resumable run.
"""
