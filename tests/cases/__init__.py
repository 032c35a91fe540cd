"""Test cases shared by the CPython and the browser runs (they must run in Pyodide too)."""
