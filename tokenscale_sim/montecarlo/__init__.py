"""The Monte Carlo engine: structure-aware samplers, streaming moments, checkpoints, simulate.

Modules, in pipeline order:

- :mod:`.kernel_draws`: per-kernel draws of iid columns ``N(0, K)`` along positions;
- :mod:`.sampling`: the structure's sampling plan (validated once) and the samplers built on it;
- :mod:`.gram`: the width-free exact gram recursion (cost independent of the width d);
- :mod:`.steps`: the jitted, sharded per-chunk step, the choice of method, memory estimates;
- :mod:`.config`: :class:`~.config.SimulationConfig` and the :func:`~.config.run_plan` of a run;
- :mod:`.moments`: Chan/Welford streaming moments and their summary (mean, std, se, band);
- :mod:`.checkpoints`: replicate accumulators, checkpoint files, multi-process plumbing;
- :mod:`.simulation`: :func:`~.simulation.simulate`, the chunked, sharded, resumable run.
"""
