"""The afluente Spark steps' logic: split_tables.py and load_warehouse.py are thin mains over this package.

It targets Spark 3.5 on Python 3.9 (the EMR 7 runtime). spec.py and sql.py are plain Python; schema.py and
split.py build Spark schemas and DataFrame transforms; split_job.py and load_job.py do the I/O.
"""
