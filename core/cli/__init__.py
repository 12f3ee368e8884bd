"""The ``facegate`` command: argument parsing and printing only (:mod:`.main` for the engine
commands and the entry point, :mod:`.registry` for the registry commands, :mod:`.monitor` for
``facegate monitor``)."""
