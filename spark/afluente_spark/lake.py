"""Small documents and listings in the lake through Hadoop's FileSystem (spark._jvm), so file:// and s3://
(EMRFS on EMR) work the same without boto3. Keys are relative to a lake root URI."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, List, Optional

from pyspark.sql import SparkSession


def join(root: str, key: str) -> str:
    return root.rstrip("/") + "/" + key.lstrip("/")


@dataclass(frozen=True)
class FileInfo:
    name: str
    uri: str
    length: int


class Lake:
    def __init__(self, spark: SparkSession) -> None:
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _resolve(self, uri: str) -> Any:
        path = self._jvm.org.apache.hadoop.fs.Path(uri)
        return path, path.getFileSystem(self._conf)

    def read_bytes(self, uri: str) -> bytes:
        path, fs = self._resolve(uri)
        stream = fs.open(path)
        out = self._jvm.java.io.ByteArrayOutputStream()
        # copyBytes closes both streams.
        self._jvm.org.apache.hadoop.io.IOUtils.copyBytes(stream, out, 65536, True)
        return bytes(out.toByteArray())

    def read_text(self, uri: str) -> str:
        return self.read_bytes(uri).decode("utf-8")

    def read_json(self, uri: str) -> Any:
        return json.loads(self.read_text(uri))

    def write_bytes(self, uri: str, data: bytes) -> None:
        path, fs = self._resolve(uri)
        out = fs.create(path, True)
        try:
            out.write(bytearray(data))
        finally:
            out.close()

    def write_json(self, uri: str, doc: Any) -> None:
        self.write_bytes(uri, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))

    def exists(self, uri: str) -> bool:
        path, fs = self._resolve(uri)
        return bool(fs.exists(path))

    def size(self, uri: str) -> Optional[int]:
        """A file's length in bytes, or None when it does not exist."""
        path, fs = self._resolve(uri)
        if not fs.exists(path):
            return None
        return int(fs.getFileStatus(path).getLen())

    def delete(self, uri: str, recursive: bool = False) -> None:
        path, fs = self._resolve(uri)
        if fs.exists(path):
            fs.delete(path, recursive)

    def list_files(self, prefix_uri: str) -> List[FileInfo]:
        """The files directly under a folder (not recursive), sorted by name; [] when it does not exist."""
        path, fs = self._resolve(prefix_uri)
        if not fs.exists(path):
            return []
        files = []
        for status in fs.listStatus(path):
            if status.isFile():
                name = status.getPath().getName()
                files.append(FileInfo(name, join(prefix_uri, name), int(status.getLen())))
        return sorted(files, key=lambda f: f.name)

    def parquet_rows(self, uri: str) -> int:
        """A Parquet file's row count, from its footer (no Spark job)."""
        path, _ = self._resolve(uri)
        parquet = self._jvm.org.apache.parquet.hadoop
        reader = parquet.ParquetFileReader.open(parquet.util.HadoopInputFile.fromPath(path, self._conf))
        try:
            return int(reader.getRecordCount())
        finally:
            reader.close()

    def spellings(self, uri: str) -> List[str]:
        """The ways Spark may spell a file's URI (input_file_name), so a row can be mapped back to its input."""
        path, fs = self._resolve(uri)
        qualified = fs.makeQualified(path)
        return list(dict.fromkeys([uri, str(qualified.toUri().toString()), str(qualified.toString())]))
