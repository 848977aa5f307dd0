"""The laws: what a fit is of (bottom layer of ``fit``; imports nothing else from ``fit``).

:mod:`.models` (:class:`~.models.Model`, the paper's laws in log space), :mod:`.define`
(:func:`~.define.define_law`: a JAX function as a law; the built-in linear-space laws),
:mod:`.expression` (:func:`~.expression.parse_law`: a safe expression as a law), with
:mod:`.lawcheck` (one-line errors on a law that cannot be traced) and :mod:`.lawcache` (the same
source, the same model). Hands on: a ``Model`` that every later layer fits, checks and reports.
"""
