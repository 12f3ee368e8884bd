"""The console's Settings dialog: cameras (with a live test) and the decision policy (HR, audited).

The settings themselves — the file, its checks, masking passwords, the HR rule — live in
:mod:`core.live.settings`; this package only shows and asks::

    dialog = SettingsDialog(load_settings(), registry_path, parent=window)
    if dialog.exec() == QDialog.DialogCode.Accepted:
        settings = dialog.result_settings()  # already saved
"""

from gui.settings.dialog import SettingsDialog

__all__ = ["SettingsDialog"]
