"""Where medbench keeps its own files: one home folder for the answer cache and the tiny models.

`$MEDBENCH_HOME` names it; by default it is the user cache folder (e.g. `~/.cache/medbench`).
Tiny models live in `<home>/models`, each in a folder named by its identity, so that every
answer cache (a fresh `--cache`, `make demo`'s, the default one) shares them.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "MEDBENCH_HOME"
MODELS_FOLDER = "models"


def medbench_home() -> Path:
    """`$MEDBENCH_HOME` if set, else medbench's folder in the user cache folder."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("medbench"))


def models_dir() -> Path:
    """The one folder tiny local models are built in, whatever answer cache a command uses."""
    return medbench_home() / MODELS_FOLDER
