"""The edgesql demo app: a task manager in Python, running in the browser.

Projects, tasks, tags (many-to-many) and comments in SQLite on this device
(OPFS), synced with the primary. ``index.html`` loads ``main.py`` through
PyScript; PyScript copies this package into Pyodide's file system (the
``files`` of ``pyscript.json``, one line per module).

Modules, by what they do:

* ``data``     the SQL of every view and every write (runs on CPython too)
* ``views``    query results → HTML (pure functions)
* ``live``     live views: a ``db.watch`` whose parameters follow the selection
* ``ui``       the page: events in, writes out, live views onto the DOM
* ``syncbar``  the sync indicator in the header
* ``seed``     sample data for a first look
* ``cells``    sync bookkeeping (keys, encoded cells, clock stamps) for people
"""
