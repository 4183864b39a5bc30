"""Stage ``report``: the self-contained HTML report of the run (``report/index.html``)."""

from __future__ import annotations

from vlmbrain.stages.base import Stage, Step, register_stage


class ReportStage(Stage):
    name = "report"
    command = "report"
    help = "write the self-contained HTML report"
    config_keys = ("report",)
    reads = ("analysis tables", "encoding maps", "model.json")
    writes = ("report",)

    def steps(self, ctx):
        def work():
            from vlmbrain.report import build_report

            build_report(ctx.run_dir, surfaces=ctx.config.report.surface_figures)

        return [Step("report", ctx.layout.report_dir, ["index.html"], work, after=["analysis"])]


register_stage(ReportStage())
