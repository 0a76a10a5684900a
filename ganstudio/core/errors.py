"""Exceptions that carry a message meant for the user (no traceback needed)."""


class UserError(Exception):
    """A problem the user can fix: bad path, bad setting, missing file.

    The CLI prints ``str(error)`` on one line and exits with code 2; the
    studio shows it in a message box.
    """


class DatasetError(UserError):
    """The image folder cannot be used (missing, empty, nothing readable)."""


class ConfigError(UserError):
    """A setting has an unknown key or a value outside its type or bounds."""


class CheckpointError(UserError):
    """A checkpoint is missing, corrupt, unsafe or belongs to another model."""


class PluginStepError(RuntimeError):
    """A plugin raised inside its training step; carries the plugin's name."""

    def __init__(self, plugin: str, message: str):
        super().__init__(f"plugin '{plugin}' failed: {message}")
        self.plugin = plugin
