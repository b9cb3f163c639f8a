"""What the process-level benchmarks share: the run's stack, folder and tag, the offline
upstream and the gateway's model file pointed at it (``bench/rollout.py``,
``bench/control.py``, ``bench/gateway.py``)."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from routeiq_cli.stack.settings import StackSettings
from support.processes import ServiceProcess, free_port

REPO = Path(__file__).resolve().parents[1]


class BenchRun(NamedTuple):
    """The local stack's settings, this run's own folder, and the tag that names its topics,
    router and subjects (so a run never reads another's)."""

    stack: StackSettings
    work: Path
    tag: str


def bench_run(name: str) -> BenchRun:
    """A fresh run of benchmark ``name`` against the local stack."""
    return BenchRun(
        StackSettings.load(),
        Path(tempfile.mkdtemp(prefix=f"bench-{name}-")),
        f"bench-{name}-{int(time.time())}",
    )


def start_upstream(
    work: Path, processes: list[ServiceProcess], *, datasets: Sequence[str] = ("gsm8k",)
) -> str:
    """The offline upstream (recorded answers of ``datasets``, 0 ms), appended to
    ``processes``; its URL."""
    port = free_port()
    processes.append(
        ServiceProcess(
            "routeiq_upstream",
            {
                "ROUTEIQ_UPSTREAM_PORT": str(port),
                "ROUTEIQ_UPSTREAM_DATASETS": json.dumps(list(datasets)),
            },
            work / "upstream.log",
            health_url=f"http://127.0.0.1:{port}/health/ready",
        ).start()
    )
    return f"http://127.0.0.1:{port}/v1"


def write_model_file(work: Path, upstream: str, **routeiq: Any) -> Path:
    """The local stack's model file with every deployment on ``upstream`` and ``routeiq``
    fields replaced; written to ``work/models.yaml``."""
    model_file = yaml.safe_load((REPO / "services/gateway/config/local.yaml").read_text())
    for d in model_file["model_list"]:
        d["litellm_params"]["api_base"] = upstream
    model_file["routeiq"].update(routeiq)
    path = work / "models.yaml"
    path.write_text(yaml.safe_dump(model_file))
    return path
