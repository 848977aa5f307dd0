"""What every stage leans on and none computes with: checks, output folders, compiled programs.

:mod:`.validation` (argument checks, keys, memory estimates), :mod:`.outputs` (checked output
folders and files, run metadata) with :mod:`.replacement` (the swap of a run folder that no
signal can split), :mod:`.compile_cache` (JAX's persistent cache, switched on at the edges),
:mod:`.stored_programs` (whole compiled fits kept on disk) with :mod:`.program_files` (their
file: JSON beside the executable's bytes) and :mod:`.ownership` (a cache is read only if no one
else could have written it), :mod:`.waiting` (results awaited with Ctrl-C still heard). Hands
on: one-line errors and files that are written whole or not
at all.
"""
