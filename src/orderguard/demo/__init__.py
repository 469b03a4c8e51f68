"""``orderguard demo``: the shopper simulator, the processes it drives, and its oracle."""

from orderguard.demo.run import DemoOptions, run_demo

__all__ = ["DemoOptions", "run_demo"]
