"""Built-in plugin ganstudio_style (in progress)."""
import ganstudio

__version__ = "0.0.1"
GANSTUDIO_PLUGIN_API = 1


@ganstudio.hookimpl
def ganstudio_register_models():
    return []
