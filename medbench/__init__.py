"""medbench: how fragile are vision-language models on medical images?"""

from importlib import metadata

try:
    __version__ = metadata.version("medbench")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
