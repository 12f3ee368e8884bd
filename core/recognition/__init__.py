"""Embeddings → decisions: the three classifiers (:mod:`.classifiers`), the open-set gate
(:mod:`.openset`), the recognition model and the detect→align→embed pipeline (:mod:`.engine`),
folder datasets (:mod:`.dataset`) and ``facegate evaluate`` (:mod:`.evaluate`).  No storage, no
cameras."""
