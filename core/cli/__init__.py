"""The ``facegate`` command: argument parsing and printing only.

:mod:`.main` (the entry point and the engine commands), :mod:`.registry` (the registry commands),
:mod:`.monitor` (``facegate monitor``, a thin client of :mod:`core.live.session`), and :mod:`.common`
(what they share: argument types, the progress bar, the data folder, the decision policy, tables),
which imports none of the other three.
"""
