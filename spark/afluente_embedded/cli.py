"""The main both embedded steps share: arguments, the step, and a one-line error on failure.

    python -m afluente_embedded <split_tables|load_warehouse> --spec <uri> [--lake-root <uri>]
        [--step-name <name>] [--memory-limit 512MB] [--threads N] [--temp-dir <folder>]

As the Spark mains (afluente_spark/cli.py): exit code 0 and, as the last line on stdout, the manifest or
LoadResult (one line of JSON); on failure exit code 1, or 2 when a retry would fail the same way
(afluente_spark/errors.py), and, as the last line on stderr, `<job>: <reason>`.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import traceback
from typing import List, Optional

from afluente_spark.errors import EXIT_FAILED, SpecError, StepError, exit_code, one_line

JOBS = ("split_tables", "load_warehouse")


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m afluente_embedded",
                                     description="afluente's embedded engine (DuckDB): one transform or load step")
    parser.add_argument("job", choices=JOBS)
    parser.add_argument("--spec", required=True, help="URI of the step's spec (file://)")
    parser.add_argument("--lake-root", default=None, help="lake root URI (file://) overriding the spec's lakeRoot")
    parser.add_argument("--step-name", default=None, help="the step's name; only there to identify the process")
    parser.add_argument("--memory-limit", default="512MB", help="DuckDB's memory_limit; beyond it, it spills")
    parser.add_argument("--threads", type=int, default=0, help="DuckDB threads; 0 for every core")
    parser.add_argument("--temp-dir", default=None, help="folder for the step's database and spill files")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    failure: Optional[str] = None
    code = EXIT_FAILED
    try:
        from .lake import local_root

        spec_path = local_root(args.spec)
        try:
            with open(spec_path, encoding="utf-8") as source:
                spec = json.load(source)
        except OSError as error:
            raise StepError(f"cannot read the spec {args.spec}: {error}") from None
        except ValueError as error:
            raise SpecError(f"the spec {args.spec} is not JSON: {error}") from None
        options = {"memory_limit": args.memory_limit, "threads": args.threads, "temp_dir": args.temp_dir}
        if args.job == "split_tables":
            from .split_job import run_split

            outcome = run_split(spec, args.lake_root, **options)
        else:
            from .load_job import run_load

            outcome = run_load(spec, args.lake_root, **options)
        print(json.dumps(outcome, separators=(",", ":")), flush=True)
    except StepError as error:
        failure = str(error)
        code = exit_code(error)
    except Exception as error:  # noqa: BLE001 - a bug still ends with the one-line reason
        traceback.print_exc()
        failure = f"{type(error).__name__}: {error}"
    # For the benchmarks and the step's log: the memory the step took, DuckDB's included (Linux reports KiB).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    sys.stdout.flush()
    sys.stderr.write(f"afluente_embedded: {args.job} peak RSS {peak} MiB\n")
    if failure is None:
        sys.stderr.flush()
        return 0
    sys.stderr.write(f"{args.job}: {one_line(failure)}\n")
    sys.stderr.flush()
    return code
