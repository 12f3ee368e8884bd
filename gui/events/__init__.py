"""The Events view of the guard console: the event log, newest first, filtered, exported to CSV.

:class:`~gui.events.view.EventsView` (filter bar, table, export) is built on
:class:`~gui.events.model.EventsModel` (pages from the registry API), painted by
:mod:`gui.events.delegates`.
"""
