"""The thin main both steps share: arguments, the SparkSession, the spec, and a one-line error on failure.

    spark-submit … split_tables.py --spec <uri> [--lake-root <uri>]

Exit code 0 and, as the last line on stdout, the manifest or LoadResult (one line of JSON) on success; on failure
exit code 1, or 2 when a retry would fail the same way (errors.py), and, as the last line on stderr,
`<job>: <reason>`.
"""
from __future__ import annotations

import argparse
import json
import sys
import traceback
from typing import Any, Callable, Dict, List, Mapping, Optional

from .errors import EXIT_FAILED, SpecError, StepError, exit_code, java_message, one_line

Runner = Callable[[Any, Mapping[str, Any], Optional[str]], Dict[str, Any]]


def parse_args(job: str, argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"{job}.py", description=f"afluente {job} step")
    parser.add_argument("--spec", required=True, help="URI of the step's spec (file://, s3://)")
    parser.add_argument("--lake-root", default=None, help="lake root URI overriding the spec's lakeRoot")
    return parser.parse_args(argv)


def main(job: str, run: Runner, argv: Optional[List[str]] = None) -> int:
    args = parse_args(job, argv)
    # Imported here so `--help` and argument errors need no JVM.
    from py4j.protocol import Py4JJavaError
    from pyspark.sql import SparkSession

    from .lake import Lake

    spark = None
    jvm = None
    failure: Optional[str] = None
    code = EXIT_FAILED
    try:
        spark = SparkSession.builder.appName(f"afluente {job}").getOrCreate()
        jvm = spark.sparkContext._jvm
        spark.sparkContext.setLogLevel("WARN")
        try:
            spec = Lake(spark).read_json(args.spec)
        except Py4JJavaError as error:
            raise StepError(f"cannot read the spec {args.spec}: {java_message(error)}") from None
        except ValueError as error:
            raise SpecError(f"the spec {args.spec} is not JSON: {error}") from None
        outcome = run(spark, spec, args.lake_root)
        print(json.dumps(outcome, separators=(",", ":")), flush=True)
    except StepError as error:
        failure = str(error)
        code = exit_code(error)
    except Py4JJavaError as error:
        traceback.print_exc()
        failure = java_message(error)
    except Exception as error:  # noqa: BLE001 - a bug still ends with the one-line reason
        traceback.print_exc()
        failure = f"{type(error).__name__}: {error}"
    finally:
        if spark is not None:
            try:
                spark.stop()
            except Exception:  # noqa: BLE001
                pass
    if failure is None:
        return 0
    report(f"{job}: {one_line(failure)}", jvm)
    return code


def report(line: str, jvm: Any) -> None:
    """Writes the failure line last, after Spark has stopped, on the stderr the runner reads. Under
    spark-submit, Python's own stderr is merged into spark-submit's stdout (PythonRunner), so the line goes
    through the JVM's System.err, which is spark-submit's stderr; without a JVM, to Python's stderr."""
    sys.stdout.flush()
    if jvm is not None:
        try:
            jvm.java.lang.System.err.println(line)
            jvm.java.lang.System.err.flush()
            return
        except Exception:  # noqa: BLE001 - the gateway is gone: fall back to Python's stderr
            pass
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
