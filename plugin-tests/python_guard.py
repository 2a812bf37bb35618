"""make test's guard against tests leaning on this machine's own Python packages.

Run with the venv's interpreter: `.venv/bin/python plugin-tests/python_guard.py DIR`. Writes
DIR/python, DIR/python3 and DIR/python3.N, each running the interpreter the venv was made from
with -E -s -S: no PYTHON* variables, no user or system site-packages, the stdlib only. The
Makefile puts DIR first on PATH for pytest, so a test subprocess that finds Python through PATH
(a `#!/usr/bin/env python3` plugin, say) and needs pyln or anything else beyond the stdlib fails
at once with ModuleNotFoundError, whether or not this machine happens to have that package
installed. Tests start Python with sys.executable (the venv) instead. (-E -s -S rather than -I:
a script's own directory stays importable; only the machine's packages are taken away.)
"""
import os
import shlex
import sys
from pathlib import Path

if sys.prefix == sys.base_prefix:
    sys.exit("python_guard.py: run it with the venv's python (.venv/bin/python)")
version = "{}.{}".format(*sys.version_info[:2])
base = Path(sys.base_prefix) / "bin" / f"python{version}"
if not os.access(base, os.X_OK):
    base = Path(sys.base_prefix) / "bin" / "python3"
out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
script = (
    "#!/bin/sh\n"
    "# Written by plugin-tests/python_guard.py for make test: the stdlib only, so a test that\n"
    "# starts Python through PATH cannot use this machine's packages (use sys.executable).\n"
    f"exec {shlex.quote(str(base))} -E -s -S \"$@\"\n"
)
for name in ("python", "python3", f"python{version}"):
    p = out / name
    p.write_text(script)
    p.chmod(0o755)
