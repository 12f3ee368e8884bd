"""HR in the console: the login that locks when idle (:mod:`.access`), and the views built on it."""
