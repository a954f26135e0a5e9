"""The artefact fuzz campaign of ``benchmarks/fuzz_artefacts.py`` (its docstring tells what a case is and how it is
judged), by topic, each module importing only those above it:

* ``halves``: the two files' bytes: damage, sidecar bytes <-> header and chunk bodies, graph proto <-> sealed bytes;
* ``bases``: the intact exported pairs every case starts from, and a case's files;
* ``values``: mutations of one JSON value or one initializer;
* ``graph_family``, ``sidecar_family``, ``crafted``: the families' case generators;
* ``families``: the registry of families (their shares of ``--cases``) and ``make_case``;
* ``worker``: the worker process that loads and runs one case at a time, and its parent-side handle;
* ``campaign``: writing, running and judging cases, the report and the command line (``main``).
"""
