"""The server side of edgesql: the dev server and the embedded primary.

Runs on CPython only (Starlette + uvicorn); it is left out of the wheel
served to the browser.
"""
