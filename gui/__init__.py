"""FaceGate's Qt front end: the guard console.  Only this package imports Qt.

* :mod:`.launcher` — the ``facegate`` command: the console by default, the headless commands otherwise.
* :mod:`.app` — display check, settings file, the window and Qt's event loop.
* :mod:`.main_window` — live tab (feeds + at-the-gate panel), alarms, events tab, models tab, status bar.
* :mod:`.session_worker` — the live session on its own QThread; reports arrive as queued signals.
* :mod:`.feed`, :mod:`.gate_panel` — camera tiles painted with QPainter; the decision cards and the
  override dialog.
* :mod:`.events`, :mod:`.comparison`, :mod:`.settings` — the event log view, the model comparison view,
  the settings dialog.
* :mod:`.theme`, :mod:`.threads` — shared colours/fonts/words; every QThread is started and stopped
  through ``threads`` so none is forgotten.
"""
