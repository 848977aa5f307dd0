"""Which law: many laws compared on the same curves, the transition test and the shape test.

:mod:`.curvature` (is ln S convex in ln n?), :mod:`.transition` (is there an n_b? tied fits) and
:mod:`.compare` (AICc, BIC, cross-validation, extrapolation, bootstrap shares). Hands on: tables
and tests that the report and the CLI print.
"""
