"""The memory, rewrite and cost benches measure what they claim, at tiny sizes (no timings): the CPU
quota binds the process it is given and only it, each bench's output carries its fields, and the
cost arithmetic counts renewals with the planner's own rule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import cost
from bench.cpu_share import CPU_HIERARCHY, CpuShare
from standins.template import load_template

ROOT = Path(__file__).resolve().parents[2]
BURN = "import time\nc = time.process_time()\nwhile time.process_time() - c < 0.3: pass"

needs_cgroup = pytest.mark.skipif(
    not (CPU_HIERARCHY / "cpu.cfs_quota_us").exists() or not os.access(CPU_HIERARCHY, os.W_OK),
    reason="no writable cgroup v1 cpu controller to impose Lambda's CPU share",
)


@needs_cgroup
def test_the_quota_is_lambdas_share_and_throttles_the_process_it_runs() -> None:
    # Lambda's smallest size (7% of a CPU): the quota binds even when the shared machine gives the
    # process less than a larger share would allow.
    with CpuShare(128) as share:
        assert share.quota_us == round(100_000 * 128 / 1769)  # 1,769 MB is one vCPU
        assert (share.path / "cpu.cfs_quota_us").read_text().strip() == str(share.quota_us)
        done = subprocess.run(share.command([sys.executable, "-c", BURN]), timeout=60)
        assert done.returncode == 0
        throttling = share.throttling()
        assert throttling.throttled_periods > 0
        assert throttling.throttled_seconds > 0
        path = share.path
    assert not path.exists()  # removed once its process has gone


@needs_cgroup
def test_a_process_outside_the_group_is_not_throttled_by_it() -> None:
    with CpuShare(128) as share:
        subprocess.run([sys.executable, "-c", BURN], timeout=60, check=True)  # not through share.command
        assert share.throttling().throttled_periods == 0


def test_renewals_per_day_follow_the_planners_rule() -> None:
    assert cost.renewals_per_day("1h", "20m", 20) == 72  # tbot's defaults: every 20 minutes
    assert cost.renewals_per_day("2h", "20m", 20) == 72  # a longer TTL alone rewrites as often
    assert cost.renewals_per_day("24h", "8h", 60) == 3
    assert cost.renewals_per_day("1h", "30m", 30) == 48


def test_the_cost_script_prints_every_table_from_the_committed_results(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["cost.py", "--clusters", "100,1000,10000"])
    cost.main()
    out = capsys.readouterr().out
    assert "Kubernetes 1.00 (PATCH 1.00)" in out  # the renewal bench's requests per cluster
    for memory in ("| 512 |", "| 1,024 |", "| 1,769 |"):
        assert memory in out
    assert "| **total** |" in out and "| a tbot pod |" in out
    assert "10,000 clusters" in out
    assert "| 1h | 20m | 20 | 72 |" in out


@needs_cgroup
@pytest.mark.e2e  # the worker's real handler against a whole local stack, at one memory size
def test_the_renewal_bench_reports_the_worker_at_a_memory_sizes_share() -> None:
    from bench.renewal_bench import measure

    # 128 MB (7% of a CPU) so that the quota binds however loaded the shared machine is
    row = measure(5, latency_ms=1.0, repeat=1, workers=2, clients=["urllib3"], memory=[128])

    (at_128,) = row.by_memory
    assert at_128.memory_mb == 128 and round(at_128.vcpus, 2) == 0.07
    assert [len(at_128.runs["cold"]), len(at_128.runs["warm"])] == [1, 1]
    assert at_128.throttled_seconds > 0  # the quota held the worker back (its import alone outruns it)
    assert row.kube_requests_per_cluster == 1.0  # the runs under the quota wrote every Secret too


@needs_cgroup
@pytest.mark.e2e
def test_the_discovery_bench_runs_at_a_memory_sizes_share() -> None:
    from bench.discovery_bench import measure

    invocations = measure(5, latency_ms=0.0, repeat=1, memory_mb=128)

    assert [(i.scenario, i.written) for i in invocations] == [
        ("register all", 5),
        ("no change", 0),
        ("one new cluster", 1),
    ]


@pytest.mark.e2e
def test_the_rewrite_bench_sees_which_trigger_changes_config() -> None:
    from bench.rewrite_bench import measure

    result = measure(4, repeat=1)

    changed = {s.trigger: (s.secrets, s.written, s.config_changed) for s in result.steps}
    assert changed["discovery, nothing changed"] == (4, 0, 0)
    assert changed["scheduled renewal, nothing due"] == (4, 0, 0)
    # A label change writes the labels alone, in the warm process and in one that wrote nothing; a
    # kube.update that changes nothing rendered writes nothing (an event writes what is new, changed
    # or failed).
    assert changed["label change, then discovery"] == (4, 1, 0)
    assert changed["kube.create (new cluster)"] == (5, 1, 0)  # a new Secret, no existing one touched
    assert changed["kube.update (existing cluster)"] == (5, 0, 0)
    assert changed["label change, then kube.update, in another process"] == (5, 1, 0)
    # Each relabelled Secret's next whole write also hands the relabel's field entry to our apply.
    assert changed["reload, forced"] == (5, 7, 5)
    assert changed["scheduled renewal, every certificate due"] == (5, 5, 5)
    assert len(result.registration_bytes) == 5 and min(result.registration_bytes) > 0


def test_the_readme_cost_tables_are_what_the_cost_script_prints(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The month is priced at the memory size the template deploys."""
    deployed = load_template()["Globals"]["Function"]["MemorySize"]
    monkeypatch.setattr(sys, "argv", ["cost.py", "--memory-mb", str(deployed)])
    cost.main()
    tables = [block for block in capsys.readouterr().out.strip().split("\n\n") if block.startswith("|")]
    readme = (ROOT / "README.md").read_text()
    assert len(tables) == 3  # memory sizes, the month's cost, rewrites by credential setting
    for table in tables:
        assert table in readme
