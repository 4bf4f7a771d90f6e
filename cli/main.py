"""`sentinel`: the one command-line entry point. This module builds the Typer app and registers
the commands; each command module (run, guard, query, traffic, scoring, ratings, db, demo) wires
configuration to code that lives elsewhere and imports the heavy stacks (torch, Faust, the
ClickHouse drivers) only inside the commands that run them, so `sentinel --help` stays cheap."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import typer  # noqa: E402

from cli import bundle, db, demo, guard, imports, query, ratings, run, scoring, traffic  # noqa: E402

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Sentinel Stream: score image-generation traffic from Kafka into ClickHouse.")
db_app = typer.Typer(no_args_is_help=True, help="Warehouse schema.")
app.add_typer(db_app, name="db")
trace_app = typer.Typer(no_args_is_help=True, help="Production-like traffic traces.")
app.add_typer(trace_app, name="trace")
dlq_app = typer.Typer(no_args_is_help=True, help="Dead-letter topics: what was rejected, and why.")
app.add_typer(dlq_app, name="dlq")
ratings_app = typer.Typer(no_args_is_help=True, help="Blind pairwise human ratings (A/B) for Bradley–Terry.")
app.add_typer(ratings_app, name="ratings")
reference_app = typer.Typer(no_args_is_help=True, help="Reference image sets per niche (FID/CMMD baselines).")
app.add_typer(reference_app, name="reference")
bundle_app = typer.Typer(no_args_is_help=True, help="Reproducible benchmark bundles: export a report with its data; verify one.")
app.add_typer(bundle_app, name="bundle")

# Registration order is the order `sentinel --help` lists the commands in.
app.command()(run.worker)
app.command()(run.store)
app.command()(run.up)
app.command()(run.node)
app.command()(guard.guard)
app.command()(query.sql)
app.command()(query.report)
app.command()(query.alerts)
bundle_app.command("export")(bundle.bundle_export)
bundle_app.command("verify")(bundle.bundle_verify)
trace_app.command("generate")(traffic.trace_generate)
app.command()(traffic.replay)
app.command("import")(imports.import_history)
dlq_app.command("list")(traffic.dlq_list)
dlq_app.command("replay")(traffic.dlq_replay)
app.command()(scoring.rescore)
reference_app.command("build")(scoring.reference_build)
reference_app.command("list")(scoring.reference_list)
ratings_app.command("import")(ratings.ratings_import)
ratings_app.command("list")(ratings.ratings_list)
ratings_app.command("url")(ratings.ratings_url)
db_app.command("migrate")(db.db_migrate)
app.command()(demo.demo)

if __name__ == "__main__":
    app()
