"""Pixels → faces: image reading (:mod:`.imageio`), MTCNN (:mod:`.detector`), five-point alignment
(:mod:`.align`), the FaceNet embedder (:mod:`.facenet`) and the enrollment quality gate
(:mod:`.quality`).  Knows nothing of people, models or storage."""
