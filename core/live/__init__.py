"""Live recognition: frame sources (:mod:`.sources`), tracks and identity votes (:mod:`.tracking`),
the per-camera recognition/overlay threads (:mod:`.monitor`), the event writer (:mod:`.events`), when a
face is flagged (:mod:`.flags`), the console's settings file (:mod:`.settings`), and the live session
the CLI and the console both drive (:mod:`.session`)."""
