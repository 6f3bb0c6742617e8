"""Put ``<cwd>/conf`` on the search path of tuneflow's app, so ``+best=<study>`` finds the configs
``tuneflow repeat`` / ``tuneflow report`` export to ``conf/best/``. Other Hydra apps in the same
environment are left alone: the path is added only when tuneflow's own configs are the primary ones."""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


def is_tuneflow_path(path: str) -> bool:
    return path == "pkg://tuneflow.conf" or path.rstrip("/").endswith("/tuneflow/conf")


class TuneflowBestSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        main = [element for element in search_path.get_path() if element.provider == "main"]
        if main and is_tuneflow_path(main[0].path):
            # Appended: the package's configs win over a same-named file in the project's conf/.
            search_path.append(provider="tuneflow-project", path=f"file://{Path.cwd() / 'conf'}")
