"""Live recognition: frame sources (:mod:`.sources`), tracks and identity votes (:mod:`.tracking`),
the per-camera recognition/overlay threads and the event writer (:mod:`.monitor`), and the live
session the CLI and the console both drive (:mod:`.session`)."""
