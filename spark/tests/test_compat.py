"""The jobs run on EMR 7's Python 3.9, and ship to EMR as a --py-files zip."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

SPARK_DIR = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SOURCES = sorted(p for p in SPARK_DIR.rglob("*.py") if "dist" not in p.parts)


def test_vermin_finds_nothing_newer_than_python_3_9():
    result = subprocess.run(
        [str(VENV_BIN / "vermin"), "--no-tips", "--violations", "-t=3.9-", str(SPARK_DIR)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_runtime_annotation_uses_union_syntax():
    # vermin does not flag `X | Y` in annotations; Python 3.9 evaluates them at definition time unless the
    # module has `from __future__ import annotations`.
    offenders = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
               for n in tree.body):
            continue
        for node in ast.walk(tree):
            annotations = []
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                annotations = [a.annotation for a in node.args.args + node.args.kwonlyargs] + [node.returns]
            elif isinstance(node, ast.AnnAssign):
                annotations = [node.annotation]
            for annotation in annotations:
                if annotation is not None and any(isinstance(n, ast.BinOp) for n in ast.walk(annotation)):
                    offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


def _python39():
    """A Python 3.9 interpreter, if the machine has one (pyenv's, or one on PATH that really runs)."""
    candidates = sorted(Path.home().glob(".pyenv/versions/3.9*/bin/python3.9")) + [Path(shutil.which("python3.9") or "")]
    for candidate in candidates:
        if candidate.is_file():
            probe = subprocess.run([str(candidate), "--version"], capture_output=True, text=True)
            if probe.returncode == 0 and "3.9" in probe.stdout + probe.stderr:
                return str(candidate)
    return None


@pytest.mark.skipif(_python39() is None, reason="no Python 3.9 interpreter on this machine")
def test_python_3_9_compiles_everything_and_imports_the_plain_modules():
    python39 = _python39()
    compiled = subprocess.run([python39, "-m", "py_compile", *map(str, SOURCES)], capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from afluente_spark import spec, sql, diagnose; "
        "t = spec.read_tables({'a': {'key': ['id'], 'columns': {'id': {'path': 'id', 'type': 'bigint'}}}}); "
        "print(sql.WarehouseSql(t, 'postgres', 's', 1, '2026-01-01 00:00:00').create_target(t.parent))"
    )
    imported = subprocess.run([python39, "-c", script, str(SPARK_DIR)], capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith('CREATE TABLE IF NOT EXISTS "s"."a"')


def test_package_builds_a_reproducible_py_files_zip(tmp_path):
    out = tmp_path / "afluente_spark.zip"
    built = subprocess.run([sys.executable, str(SPARK_DIR / "package.py"), "--out", str(out)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    assert built.stdout.strip() == str(out)
    names = zipfile.ZipFile(out).namelist()
    expected = sorted(f"afluente_spark/{p.name}" for p in (SPARK_DIR / "afluente_spark").glob("*.py"))
    assert names == expected and "afluente_spark/split_job.py" in names
    first = out.read_bytes()
    subprocess.run([sys.executable, str(SPARK_DIR / "package.py"), "--out", str(out)], check=True, capture_output=True)
    assert out.read_bytes() == first
    # What --py-files does: the zip on sys.path, and the package imports from it.
    imported = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import afluente_spark.split_job as m; "
         "import afluente_spark.load_job; print(m.__file__)", str(out)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert imported.returncode == 0, imported.stderr
    assert str(out) in imported.stdout
