"""What every stage leans on and none computes with: checks, output folders, compiled programs.

:mod:`.validation` (argument checks, keys, memory estimates), :mod:`.outputs` (checked output
folders and files, run metadata), :mod:`.compile_cache` (JAX's persistent cache, switched on at
the edges) and :mod:`.stored_programs` (whole compiled fits kept on disk). Hands on: one-line
errors and files that are written whole or not at all.
"""
