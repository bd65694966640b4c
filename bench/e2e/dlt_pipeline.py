"""The e2e benchmark's baseline: dlt pulls the demo API into PostgreSQL with its rest_api source.

Run by bench/e2e/bench.ts in bench/.venv-dlt (bench/e2e/setup-dlt.sh installs it), one fresh pipeline per run:

    python dlt_pipeline.py --url http://127.0.0.1:PORT/orders --dsn postgresql://... \
        --dataset bench_dlt_123 --pipelines-dir /tmp/x --page-size 1000 [--loader-file-format csv]

It mirrors afluente's demo source (config/sources.yaml): page-number pagination (`page` from 1, `per_page`),
records under `data`, primary key `id`, merge write disposition (dlt stages into `<dataset>_staging` and merges
on the key, as afluente stages and merges), nested `items` and `tags` as the child tables `orders__items` and
`orders__tags`. The demo API signals the end with a page whose `data` is empty, so the paginator stops on the
first empty page (there is no total to read).

`--loader-file-format` is dlt's format for the load: `insert_values`, its default for PostgreSQL (normalize writes
INSERT … VALUES statements, the load runs them), or `csv`, its fastest for PostgreSQL on Python objects (normalize
writes CSV with Python's csv module, the load streams each file with COPY … FROM STDIN).

It prints one JSON line last: the time of `pipeline.run` (extract + normalize + load) in ms, dlt's own step
times, and the rows dlt says it loaded per table. The caller counts the rows in PostgreSQL itself.
"""

import argparse
import json
import os
import sys
import time

# Settings changed from dlt's defaults; everything else is left as dlt ships it. Environment variables are
# dlt's own configuration mechanism, and they must be set before dlt reads its configuration.
SETTINGS = {
    # dlt reports anonymous usage to its servers by default; this machine reaches no such server.
    "RUNTIME__DLTHUB_TELEMETRY": "false",
    # 2 cores: normalize in 2 processes (the default is 1) ...
    "NORMALIZE__WORKERS": "2",
    # ... which only helps when extract hands normalize more than one file per table: rotate extract's files
    # every 50,000 items (the default is one file per table).
    "DATA_WRITER__FILE_MAX_ITEMS": "50000",
    # 2 cores: load with 2 PostgreSQL connections at once (the default is 20 threads).
    "LOAD__WORKERS": "2",
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="the demo API's orders URL")
    parser.add_argument("--dsn", required=True, help="postgresql://user@host:port/database")
    parser.add_argument("--dataset", required=True, help="the PostgreSQL schema to load into (fresh)")
    parser.add_argument("--pipelines-dir", required=True, help="dlt's working folder (fresh)")
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument(
        "--loader-file-format", choices=("insert_values", "csv"), default="insert_values"
    )
    parser.add_argument(
        "--defaults", action="store_true", help="leave dlt's worker settings at its defaults"
    )
    args = parser.parse_args()

    settings = {"RUNTIME__DLTHUB_TELEMETRY": "false"} if args.defaults else SETTINGS
    os.environ.update(settings)

    import dlt
    from dlt.common.configuration.specs import ConnectionStringCredentials
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source(
        {
            "client": {
                "base_url": args.url.rsplit("/", 1)[0] + "/",
                "paginator": {
                    "type": "page_number",
                    "page_param": "page",
                    "base_page": 1,
                    "total_path": None,
                    "stop_after_empty_page": True,
                },
            },
            "resource_defaults": {
                "primary_key": "id",
                "write_disposition": "merge",
            },
            "resources": [
                {
                    "name": "orders",
                    "endpoint": {
                        "path": args.url.rsplit("/", 1)[1],
                        "params": {"per_page": args.page_size},
                        "data_selector": "data",
                    },
                }
            ],
        },
        name="demo",
    )

    credentials = ConnectionStringCredentials(args.dsn)
    # dlt insists on a password; the local PostgreSQL trusts loopback connections and ignores this one.
    credentials.password = credentials.password or "unused"

    pipeline = dlt.pipeline(
        pipeline_name="afluente_bench",
        pipelines_dir=args.pipelines_dir,
        destination=dlt.destinations.postgres(credentials=credentials.to_native_representation()),
        dataset_name=args.dataset,
        progress=None,
    )

    started = time.perf_counter()
    info = pipeline.run(source, loader_file_format=args.loader_file_format)
    ms = (time.perf_counter() - started) * 1000
    info.raise_on_failed_jobs()

    trace = pipeline.last_trace
    steps = {
        step.step: round((step.finished_at - step.started_at).total_seconds() * 1000)
        for step in trace.steps
        if step.step in ("extract", "normalize", "load") and step.finished_at
    }
    rows = dict(trace.last_normalize_info.row_counts) if trace.last_normalize_info else {}
    print(
        json.dumps(
            {
                "ms": round(ms),
                "steps": steps,
                "rows": {k: v for k, v in rows.items() if not k.startswith("_dlt")},
                "dlt": dlt.__version__,
                "settings": settings,
                "loaderFileFormat": args.loader_file_format,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
