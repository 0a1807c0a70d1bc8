"""Cold import time of each Lambda handler (`functions/*/app.py`), each in a fresh interpreter.

    .venv/bin/python bench/import_time.py [--repeat 5] [--top 10] [--json]

What a cold start pays before the first event: the wall-clock time of loading `app.py` with its
function folder on the path, the layer on PYTHONPATH and the environment template.yaml gives the
function (Lambda's own variables included, so Powertools' Tracer is on when the template says
`Tracing: Active`, as in Lambda). Median of `--repeat` fresh processes; then one run under
`python -X importtime` names the modules that cost most (cumulative, any depth, so a package
and its heaviest submodules both show).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from standins.template import load_template  # noqa: E402

TARGET_S = 0.400
TIMEOUT_S = 60.0
MARK = "--handler import starts--"
LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
# The startup imports come before MARK; the handler's after. Prints the load's wall time.
LOAD = (
    "import importlib.util, sys, time; sys.path.insert(0, sys.argv[1]); "
    f"print({MARK!r}, file=sys.stderr, flush=True); "
    "t = time.perf_counter(); spec = importlib.util.spec_from_file_location('app', sys.argv[1] + '/app.py'); "
    "spec.loader.exec_module(importlib.util.module_from_spec(spec)); print(time.perf_counter() - t)"
)


def handlers() -> list[str]:
    return sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))


def lambda_env(function: str) -> dict[str, str]:
    """The variables the template sets for this function folder (placeholders for references), plus
    Lambda's own; the template's values, not this shell's, decide what the handler sees at import."""
    template = load_template()
    globals_ = template.get("Globals", {}).get("Function", {})
    variables: dict[str, Any] = dict(globals_.get("Environment", {}).get("Variables", {}))
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if (
            resource.get("Type") == "AWS::Serverless::Function"
            and str(props.get("CodeUri", "")).rstrip("/") == f"functions/{function}"
        ):
            variables.update(props.get("Environment", {}).get("Variables", {}))
    env = {k: v if isinstance(v, str) else f"placeholder-{k.lower()}" for k, v in variables.items()}
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {
        **{k: os.environ[k] for k in keep if k in os.environ},
        **env,
        "PYTHONPATH": str(ROOT / "layers" / "core"),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "LAMBDA_TASK_ROOT": str(ROOT / "functions" / function),
        **({"POWERTOOLS_TRACE_DISABLED": "true"} if globals_.get("Tracing") != "Active" else {}),
    }


def _load(function: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *flags, "-c", LOAD, str(ROOT / "functions" / function)],
        env=lambda_env(function),
        capture_output=True,
        text=True,
        check=True,
        timeout=TIMEOUT_S,
    )


def measure(function: str, repeat: int, top: int) -> dict[str, Any]:
    """Median wall time of `repeat` cold loads, and the `top` modules by cumulative import time."""
    _load(function)  # writes the .pyc files a deployed layer would already have
    seconds = [float(_load(function).stdout.split()[-1]) for _ in range(repeat)]
    traced = _load(function, "-X", "importtime").stderr.partition(MARK)[2]
    modules = sorted(
        ((int(m[2]) / 1e6, m[4]) for m in LINE.finditer(traced)),
        reverse=True,
    )
    return {
        "handler": function,
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "top": [{"module": name, "cumulative_s": s} for s, name in modules[:top]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [measure(f, max(1, args.repeat), args.top) for f in handlers()]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        verdict = "ok" if r["median_s"] <= TARGET_S else f"over {TARGET_S * 1000:.0f} ms"
        print(
            f"{r['handler']:12} {r['median_s'] * 1000:6.0f} ms median of {args.repeat} "
            f"({r['min_s'] * 1000:.0f}-{r['max_s'] * 1000:.0f}), {verdict}"
        )
        for m in r["top"]:
            print(f"{'':14}{m['cumulative_s'] * 1000:6.0f} ms  {m['module']}")


if __name__ == "__main__":
    main()
