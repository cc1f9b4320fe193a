"""Lab reports: for a run and for an experiment's group of runs, as Markdown or one self-contained HTML page.

    from cnnviz.reports import run_report, render
    text = render(run_report(store, 3), "html")

Charts are embedded as PNG images, misclassified validation pictures as thumbnails.
"""

from cnnviz.reports.experiment_report import experiment_report
from cnnviz.reports.render import FORMATS, Report, Section, render, to_html, to_markdown
from cnnviz.reports.run_report import describe_config, run_report, runs_report

__all__ = ["FORMATS", "Report", "Section", "describe_config", "experiment_report", "render", "run_report", "runs_report",
           "to_html", "to_markdown"]
