"""Cold import time of each Lambda handler (`functions/*/app.py`), each in a fresh interpreter.

    .venv/bin/python bench/import_time.py [--repeat 5] [--top 10] [--json]

What a cold start pays before the first event: the wall-clock time of loading `app.py` with its
function folder on the path, the layer on PYTHONPATH and the environment template.yaml gives the
function (Lambda's own variables included, so Powertools' Tracer is on when the template says
`Tracing: Active`, as in Lambda). Median of `--repeat` fresh processes, wall and CPU time (on a
shared machine the CPU time is the steadier of the two); then one run under
`python -X importtime` names the modules that cost most (cumulative, any depth, so a package
and its heaviest submodules both show).

    .venv/bin/python bench/import_time.py --layer [--repeat 5] [--top 10] [--json]

measures each handler both ways, side by side: against the dev venv as above, and against the
layer as Lambda loads it. The dev venv holds `awscrt` and dev tools that make `boto3` and
`s3transfer` heavier to import than on Lambda, so `layers/core/requirements.txt` is installed for
this machine's platform into `build/layer-<hash>/python` (once; the hash covers the requirements
and the interpreter) and each handler runs under `python -S -E` (no site-packages, no PYTHON*
variables) with only the function folder, `layers/core` and that folder on `sys.path`, in
Lambda's order. Lambda's runtime ships its own boto3/botocore, but the layer pins them and the
layer comes first on Lambda's path, so the layer's copy is what a handler imports and what this
measures. Wheels are this machine's (x86_64 here), not the deployed arm64 ones.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from standins.template import load_template  # noqa: E402

TARGET_S = 0.300
TIMEOUT_S = 60.0
MARK = "--handler import starts--"
LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
LAYER_REQUIREMENTS = ROOT / "layers" / "core" / "requirements.txt"
PIP_TIMEOUT_S = 600.0
# The startup imports come before MARK; the handler's after. Prints the load's wall and CPU time.
# The module is registered as `app` before it runs, as Lambda's runtime imports it (import_module).
# Arguments: the function folder, then any folders to put after it on sys.path.
LOAD = (
    "import importlib.util, sys, time; sys.path[:0] = sys.argv[1:]; "
    f"print({MARK!r}, file=sys.stderr, flush=True); "
    "t, c = time.perf_counter(), time.process_time(); "
    "spec = importlib.util.spec_from_file_location('app', sys.argv[1] + '/app.py'); "
    "sys.modules['app'] = module = importlib.util.module_from_spec(spec); "
    "spec.loader.exec_module(module); "
    "print(time.perf_counter() - t, time.process_time() - c)"
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


def layer_site() -> Path:
    """The layer's dependencies installed for this interpreter and platform, installed on first use."""
    tag = f"{LAYER_REQUIREMENTS.read_text()}|{sys.version}|{platform.machine()}|{sys.platform}"
    site = ROOT / "build" / f"layer-{hashlib.sha256(tag.encode()).hexdigest()[:12]}" / "python"
    if site.is_dir():
        return site
    partial = site.with_name("python.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--target",
            str(partial),
            "-r",
            str(LAYER_REQUIREMENTS),
        ],
        check=True,
        timeout=PIP_TIMEOUT_S,
    )
    partial.rename(site)
    return site


def _load(function: str, *flags: str, layer: Path | None = None) -> subprocess.CompletedProcess[str]:
    """One cold load; with `layer`, isolated from the venv and with only the layer on the path."""
    isolation = ("-S", "-E") if layer is not None else ()
    path = [str(ROOT / "layers" / "core"), str(layer)] if layer is not None else []
    return subprocess.run(
        [sys.executable, *isolation, *flags, "-c", LOAD, str(ROOT / "functions" / function), *path],
        env=lambda_env(function),
        capture_output=True,
        text=True,
        check=True,
        timeout=TIMEOUT_S,
    )


def measure(function: str, repeat: int, top: int, layer: Path | None = None) -> dict[str, Any]:
    """Median wall time of `repeat` cold loads, and the `top` modules by cumulative import time."""
    _load(function, layer=layer)  # writes the .pyc files a deployed layer would already have
    loads = [[float(v) for v in _load(function, layer=layer).stdout.split()[-2:]] for _ in range(repeat)]
    seconds = [wall for wall, _ in loads]
    traced = _load(function, "-X", "importtime", layer=layer).stderr.partition(MARK)[2]
    modules = sorted(
        ((int(m[2]) / 1e6, m[4]) for m in LINE.finditer(traced)),
        reverse=True,
    )
    return {
        "handler": function,
        "mode": "venv" if layer is None else "layer",
        "median_s": statistics.median(seconds),
        # CPU time of the load: what the machine's other work does not inflate, as it does wall time.
        "median_cpu_s": statistics.median(cpu for _, cpu in loads),
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
    parser.add_argument("--layer", action="store_true", help="also measure against the layer, side by side")
    args = parser.parse_args()
    repeat = max(1, args.repeat)
    layer = layer_site() if args.layer else None
    results = [measure(f, repeat, args.top) for f in handlers()]
    if layer is not None:
        results += [measure(f, repeat, args.top, layer) for f in handlers()]
    if args.json:
        print(json.dumps(results, indent=2))
    elif layer is not None:
        print(side_by_side(results, repeat, layer))
    else:
        print_venv(results, repeat)


def side_by_side(results: list[dict[str, Any]], repeat: int, layer: Path) -> str:
    """The README table: each handler's median in both modes; then the layer's heaviest modules."""
    by = {(r["handler"], r["mode"]): r for r in results}
    lines = [
        f"| handler | dev venv ms | layer ms (≤ {TARGET_S * 1000:.0f}) | layer CPU ms "
        "| layer's heaviest imports (cumulative ms) |",
        "|---|---:|---:|---:|---|",
    ]
    for name in handlers():
        venv, lay = by[name, "venv"], by[name, "layer"]
        top = ", ".join(f"{m['module']} {m['cumulative_s'] * 1000:.0f}" for m in lay["top"][:4])
        lines.append(
            f"| {name} | {venv['median_s'] * 1000:.0f} | {lay['median_s'] * 1000:.0f} "
            f"| {lay['median_cpu_s'] * 1000:.0f} | {top} |"
        )
    lines += [
        "",
        f"Medians of {repeat} fresh interpreters each; layer: `python -S -E` with {layer.relative_to(ROOT)} "
        "(this machine's wheels).",
    ]
    return "\n".join(lines)


def print_venv(results: list[dict[str, Any]], repeat: int) -> None:
    for r in results:
        verdict = "ok" if r["median_s"] <= TARGET_S else f"over {TARGET_S * 1000:.0f} ms"
        print(
            f"{r['handler']:12} {r['median_s'] * 1000:6.0f} ms median of {repeat} "
            f"({r['min_s'] * 1000:.0f}-{r['max_s'] * 1000:.0f}), {verdict}"
        )
        for m in r["top"]:
            print(f"{'':14}{m['cumulative_s'] * 1000:6.0f} ms  {m['module']}")


if __name__ == "__main__":
    main()
