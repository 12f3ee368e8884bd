"""The HR enrollment wizard (issue 11): :class:`EnrollmentWizard`, opened with :func:`open_enrollment_wizard`.

Modules: :mod:`.wizard` (the QWizard and its threads), :mod:`.workers` (capture, training, results,
activation workers), :mod:`.pages` (Operator, Review), :mod:`.capture_page`, :mod:`.train_pages` (Train,
Results).
"""

from gui.hr.wizard.wizard import EnrollmentWizard, open_enrollment_wizard

__all__ = ["EnrollmentWizard", "open_enrollment_wizard"]
