#!/usr/bin/env python3
"""Serve the edgesql app, its worker, the browser assets and the embedded primary.

    python serve.py [--host 127.0.0.1] [--port 8000] [--data ./data]

Everything the browser needs comes from this checkout and node_modules;
nothing is fetched from outside. See ``py/edgesql/server/`` for the code.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "py"))

from edgesql.server.cli import main

if __name__ == "__main__":
    main()
