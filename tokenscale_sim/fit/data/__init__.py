"""Curves in: tables, frames, arrays, the shipped data sets, checked against the law to fit.

:mod:`.table` (CSV parsing) -> :mod:`.checks` (the rules every curve meets before JAX) ->
:mod:`.curves` (:class:`~.curves.CurveSet`, readers, the paper's scores) -> :mod:`.frames`
(DataFrames, dicts, pairs) and :mod:`.nist` (the certified NIST problems).
Hands on: one padded, checked ``CurveSet`` to the engine.
"""
