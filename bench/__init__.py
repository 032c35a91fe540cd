"""edgesql's benchmark harness: ``python -m bench`` (``make bench``).

It measures edgesql in real headless Chromium on real OPFS, and puts every
figure next to its floor measured in the same run and the same page: the
raw JavaScript round trip through the same bridge to the same worker, and
the time SQLite itself takes inside that worker. Ratios to the floor are
what matter; absolute times move with the machine.

Layout (each workload is one module that measures one page load and then
summarises all loads into a report section, so later workloads — sync,
multi-tab, contenders — plug in the same way):

    config.py          what a run does (full or --quick)
    browser.py         serve.py + Chromium + one benchmark page
    inpage.py          the Python half, run inside the page's Pyodide
    inpage.js          the JavaScript half, injected into the page (raw IndexedDB too)
    shapes.py          the tables, rows and statements every contender runs
    native.py          native CPython sqlite3 on disk, in this process
    sqlite_ops.py      the timed loops on a plain sqlite3 connection: native sqlite3 here,
                       and Pyodide's own sqlite3 in memory in the page (copied in)
    pyscript_inpage.py the Python half of the pyscript.storage page
    workloads/         one module per workload: point_query, bulk_insert, edgesql_ops
                       (range read, single writes, burst, live query), other_tab
                       (edgesql from a second, non-owner tab), and the contenders
                       native_sqlite, indexeddb, pyodide_sqlite, pyscript_storage
    sidebyside.py      every contender against the floor, as ratios (first section)
    plot.py            the latency distributions as a PNG (optional: matplotlib)
    stats.py           percentiles, and medians over page loads
    model.py           results: sections, tables, target checks, samples
    environment.py     machine and versions
    quiet.py           how busy the CPUs are; waiting for them to be idle
    report.py          the stdout table and docs/benchmarks.md
    runner.py          runs every workload over several page loads
"""
