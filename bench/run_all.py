"""Run every benchmark in turn; each prints its own figures and its baseline."""

import runpy

BENCHES = ["sync", "poll", "api", "pages", "admin", "load", "chaos"]

if __name__ == "__main__":
    failed: list[str] = []
    for name in BENCHES:
        print(f"\n=== bench/{name}.py")
        try:
            runpy.run_module(f"bench.{name}", run_name="__main__")
        except SystemExit as exc:  # load and chaos exit 1 on a breach: say so, go on
            if exc.code:
                failed.append(name)
    if failed:
        raise SystemExit(f"breaches in: {', '.join(failed)}")
