"""Hardware comparison report: result records → results/REPORT.md, report.html, plots/*.png.

Modules, in the order the data flows:
  identity          what a record measured: machine, workload, options (variants), settings
  headlines         runs → configurations → headlines (latest run, n, spread); machines
  lookups           the references a headline is divided by (decode ceiling, compute ceiling)
  machine_sections  per machine: the default-settings matrix, steady state against stalls
  variants          variants against their default; one configuration across machines
  plan              cores per GPU from measured scaling curves
  accuracy          accuracy per architecture, transfer learning, feature maps
  history           latest vs previous (regressions), failures, other kinds
  jsonrows          `--json` rows;  compare: `--compare A B`
  plots / plot_*    the PNGs;  render: Markdown and HTML;  build: assembly;  cli: the command
"""
from .cli import main

__all__ = ["main"]
