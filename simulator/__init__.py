"""The market simulator app behind `python manage.py simulate`: many simulated providers, agents and customers
driven through the real services, agent API views, Celery tasks, ledger and settlement, in simulated time.

    simulation.py  `simulation_run`: one run and its outcome (report, lines, charts)
    clock.py       simulated time (timezone.now patched), eager Celery, beat replayed in simulated time
    market.py      fleets, demand, and the job mix of the Alibaba GPU trace
    trace.py       the Alibaba GPU trace shipped in data/alibaba-gpu-2023/ (also read by bench/matching.py)
    agents.py      the real rigshift_agent Runner, talking to the agent API views in-process
    run.py         the tick loop
    report.py      the reconciled report, read back from the database
    plots.py       PNG charts (matplotlib: an optional extra, requirements-plots.txt; imported only with --plots)

It drives every other app (marketplace, billing, broker), so no app imports it. The package itself imports no
model: Django imports it while the app registry is still loading.
"""
