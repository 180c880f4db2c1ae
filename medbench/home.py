"""Where medbench keeps its own files: one home folder for the answer cache and the tiny models.

`$MEDBENCH_HOME` names it; by default it is the user cache folder (e.g. `~/.cache/medbench`).
Tiny models live in `<home>/models`, each in a folder named by its identity, so that every
answer cache (a fresh `--cache`, `make demo`'s, the default one) shares them.

The project a command runs in is the nearest folder, from the current one up, that holds one of
`PROJECT_FOLDERS`: the folders commands read by default.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "MEDBENCH_HOME"
MODELS_FOLDER = "models"
PROJECT_FOLDERS = ("leaderboard", "results", "specs")


def medbench_home() -> Path:
    """`$MEDBENCH_HOME` if set, else medbench's folder in the user cache folder."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("medbench"))


def models_dir() -> Path:
    """The one folder tiny local models are built in, whatever answer cache a command uses."""
    return medbench_home() / MODELS_FOLDER


def project_folder(start: Path) -> Path | None:
    """The nearest folder from `start` up holding one of `PROJECT_FOLDERS`, relative to `start`
    (`.`, `..`, ...), or None if there is none."""
    here = Path(os.path.abspath(start))
    for folder in (here, *here.parents):
        if any((folder / name).is_dir() for name in PROJECT_FOLDERS):
            return Path(os.path.relpath(folder, here))
    return None
