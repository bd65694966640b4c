"""The lake as the embedded engine sees it: a file:// root. A runner stages an s3:// lake through a local
folder and hands the step that folder (--lake-root), so every key here is a local file."""
from __future__ import annotations

import json
import os
import shutil
from typing import Any, List
from urllib.parse import unquote, urlparse

from afluente_spark.errors import StepError


def local_root(root: str) -> str:
    """The folder of a file:// root."""
    parsed = urlparse(root)
    if parsed.scheme != "file":
        raise StepError(
            f"the embedded engine reads a file:// lake, not {root}: its runner stages an s3:// lake through a "
            "local folder and passes it as --lake-root"
        )
    return unquote(parsed.path)


class FileLake:
    def __init__(self, root: str) -> None:
        self.root = root
        self.folder = local_root(root)

    def path(self, key: str) -> str:
        return os.path.join(self.folder, *key.split("/"))

    def exists(self, key: str) -> bool:
        return os.path.exists(self.path(key))

    def size(self, key: str) -> int:
        return os.path.getsize(self.path(key))

    def read_json(self, key: str) -> Any:
        with open(self.path(key), encoding="utf-8") as source:
            return json.load(source)

    def write_json(self, key: str, doc: Any) -> None:
        """Written to a temp name and renamed: a reader never sees half a manifest."""
        target = self.path(key)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        partial = target + ".partial"
        with open(partial, "w", encoding="utf-8") as out:
            json.dump(doc, out, indent=2)
        os.replace(partial, target)

    def delete(self, key: str) -> None:
        try:
            os.remove(self.path(key))
        except FileNotFoundError:
            pass

    def empty_folder(self, prefix: str) -> str:
        """Removes everything under a prefix (a table's run folder) and returns the folder, created empty."""
        folder = self.path(prefix.rstrip("/"))
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        return folder

    def list_names(self, prefix: str) -> List[str]:
        folder = self.path(prefix.rstrip("/"))
        return sorted(os.listdir(folder)) if os.path.isdir(folder) else []
