"""Builds the zip of the afluente_spark package that EMR steps get with `spark-submit --py-files`.

    python spark/package.py [--out spark/dist/afluente_spark.zip]

The zip is reproducible: entries sorted, fixed timestamps, so the same sources give the same bytes (and the
same S3 ETag). Prints the zip's path.
"""
from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = "afluente_spark"
DEFAULT_OUT = HERE / "dist" / f"{PACKAGE}.zip"


def build(out: Path = DEFAULT_OUT) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    sources = sorted((HERE / PACKAGE).glob("*.py"))
    if not sources:
        raise SystemExit(f"no sources under {HERE / PACKAGE}")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for source in sources:
            info = zipfile.ZipInfo(f"{PACKAGE}/{source.name}", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, source.read_bytes())
    return out


def main(argv: "list[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    print(build(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
