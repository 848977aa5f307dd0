"""Figures (matplotlib only). Every function draws a result it is given and computes nothing:
``fn(result, ..., ax=None) -> Figure``. Submodules: :mod:`.theory`, :mod:`.simulation`,
:mod:`.fits`, :mod:`.hidden`.
"""
