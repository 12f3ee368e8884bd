"""FaceGate's Qt front end (guard console, enrollment wizard). Only this package imports Qt.

The console arrives with a later issue; until then ``facegate demo`` is the main job.
"""
