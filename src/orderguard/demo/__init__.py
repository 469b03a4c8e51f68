"""``orderguard demo``: the shopper simulator, the processes it drives, and its oracle
(run it with :func:`orderguard.demo.run.run_demo`)."""
