"""The static leaderboard: gather and validate records, clean the output folder, render pages.

Every file is rendered into memory first, so a bad record or a template error leaves an
existing output folder untouched. Builds are byte-reproducible: sorted inputs, no
timestamp but one build date (the newest record's date), SVG charts with a fixed hash salt
and no date. Each table is a list of plain rows (also its CSV and JSON download) and a list
of columns saying how to show them.
"""

from medbench.publish.site.build import build_site
from medbench.publish.site.charts import heatmap_svg
from medbench.publish.site.layout import SITE_DIR
from medbench.publish.site.serve import make_server, serve

__all__ = ["SITE_DIR", "build_site", "heatmap_svg", "make_server", "serve"]
