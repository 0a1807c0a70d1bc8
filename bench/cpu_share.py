"""The CPU share Lambda gives a function of a given memory size, imposed on one process by a cgroup.

Lambda "allocates CPU power in proportion to the amount of memory configured ... At 1,769 MB, a
function has the equivalent of one vCPU (one vCPU-second of credits per second)"
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html). So a function of M MB
gets M / 1,769 of a CPU-second each second, however many threads it runs. A cgroup v1 CPU
controller does the same with a CFS bandwidth quota: every `cpu.cfs_period_us` (100 ms here), the
processes in the group may run `cpu.cfs_quota_us` microseconds of CPU in all, across cores, and
are throttled until the next period once they have. `CpuShare(512)` makes such a group with a
quota of 512 / 1,769 of 100 ms; `share.command(argv)` starts argv through this module, which moves
itself into the group and then execs argv, so the limit holds from the first instruction of the
measured process (its import included) and binds nothing else: not the parent hosting the
stand-ins, not moto. `cpu.stat` tells how often the group was throttled, the proof the limit bit.

    python bench/cpu_share.py CGROUP_DIR -- PROGRAM ARGS...   (what `command` runs)

Needs a writable cgroup v1 `cpu` hierarchy (root; `/sys/fs/cgroup/cpu`); `CpuShare` refuses
with the reason where there is none.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

CPU_HIERARCHY = Path("/sys/fs/cgroup/cpu")
LAMBDA_MB_PER_VCPU = 1769  # Lambda's documented memory for one vCPU
PERIOD_US = 100_000


def vcpus(memory_mb: int) -> float:
    """The CPU-seconds per second Lambda gives a function of `memory_mb` (one vCPU at 1,769 MB)."""
    return memory_mb / LAMBDA_MB_PER_VCPU


@dataclass(frozen=True)
class Throttling:
    """The group's `cpu.stat`: CFS periods it ran in, periods it hit the quota in, time held back."""

    periods: int
    throttled_periods: int
    throttled_seconds: float


class CpuShare:
    """A cgroup with Lambda's CPU share for `memory_mb`, removed on exit."""

    def __init__(self, memory_mb: int, hierarchy: Path = CPU_HIERARCHY) -> None:
        if not (hierarchy / "cpu.cfs_quota_us").exists():
            raise RuntimeError(f"no cgroup v1 cpu controller at {hierarchy}: cannot impose a CPU share")
        self.memory_mb = memory_mb
        self.quota_us = round(PERIOD_US * vcpus(memory_mb))
        self.path = hierarchy / f"teleport-argocd-bench-{os.getpid()}-{memory_mb}mb"
        try:
            self.path.mkdir()
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(self.quota_us))
        except OSError as exc:
            self.close()
            raise RuntimeError(f"cannot make a CPU-quota cgroup under {hierarchy}: {exc}") from exc

    def command(self, argv: list[str]) -> list[str]:
        """argv, run inside the group from its start."""
        return [sys.executable, __file__, str(self.path), "--", *argv]

    def throttling(self) -> Throttling:
        stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
        return Throttling(
            periods=int(stat["nr_periods"]),
            throttled_periods=int(stat["nr_throttled"]),
            throttled_seconds=int(stat["throttled_time"]) / 1e9,
        )

    def close(self) -> None:
        """Remove the group (empty once the processes started in it have exited)."""
        if self.path.exists():
            self.path.rmdir()

    def __enter__(self) -> CpuShare:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def enter_and_exec(group: str, argv: list[str]) -> None:
    """Move this process into `group`, then become argv (exec keeps the pid, hence the group)."""
    Path(group, "cgroup.procs").write_text(str(os.getpid()))
    os.execv(argv[0], argv)


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit("usage: cpu_share.py CGROUP_DIR -- PROGRAM ARGS...")
    enter_and_exec(sys.argv[1], sys.argv[3:])
