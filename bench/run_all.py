"""Run every benchmark in turn; each prints its own figures and its baseline."""

import runpy

BENCHES = ["sync", "poll", "api", "pages", "admin"]

if __name__ == "__main__":
    for name in BENCHES:
        print(f"\n=== bench/{name}.py")
        runpy.run_module(f"bench.{name}", run_name="__main__")
