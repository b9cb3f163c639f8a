"""The causal-LM router on a tiny causal LM built here (no download): oracle labels, SFT then
DPO with LoRA through trl, the policy mapper, a signed bundle that pins its base model, the
inference worker's fallback signal, and the evaluation before and after DPO."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from routeiq.routing.bundle import (
    Candidate,
    generate_ed25519,
    load_bundle,
    run_probes,
    signer_from,
    verifier_from,
    write_bundle,
)
from routeiq.routing.featurizer import minilm_pipeline
from routeiq.routing.oracle import POLICIES
from routeiq.routing.policy_eval import (
    compare_stages,
    evaluate_policy_router,
    format_table,
    split_held_out,
)
from routeiq.routing.routers import (
    BUILTIN_ROUTERS,
    CausalLMRouter,
    FitContext,
    RouterError,
    RouterUnavailable,
    TrainingData,
)
from routeiq.routing.routers.causallm_worker import WorkerScorer
from support.causallm import PARAMS, oracle_data, tiny_base

MODELS = ("small", "large")
COSTS = {"small": 0.0001, "large": 0.002}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    data = oracle_data(MODELS)
    base = tiny_base(tmp_path_factory.mktemp("base"), list(data.texts or []))
    train, held_out = split_held_out(data, 0.25, seed=1)
    ctx = FitContext(seed=0, device="cpu")
    started = time.perf_counter()
    router = CausalLMRouter.fit(train, {**PARAMS, "base_model": str(base)}, ctx=ctx)
    ctx.info["fit_seconds"] = time.perf_counter() - started
    return router, train, held_out, base, ctx.info


def test_importing_the_routers_does_not_import_torch(tmp_path: Path) -> None:
    import subprocess

    code = (
        "import sys, routeiq.routing.routers as r; "
        "print('torch' in sys.modules, 'causallm' in r.BUILTIN_ROUTERS)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
    assert BUILTIN_ROUTERS["causallm"] is CausalLMRouter


def _router(**params: object) -> CausalLMRouter:
    return CausalLMRouter(
        MODELS, {"base_model": "unused", "cheap": "small", "strong": "large", **params}
    )


def test_oracle_labels_and_preference_pairs_follow_the_cells() -> None:
    quality = np.array([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0], [0.5, 0.5], [np.nan, 1.0]])
    data = TrainingData(
        embeddings=np.zeros((5, 2), dtype=np.float32), quality=quality, models=MODELS
    )
    router = _router()
    labels = router.label(data)
    assert labels == [
        "Standard_Query",
        "Complex_Query",
        "Ambiguous_Query",
        "Ambiguous_Query",
        None,
    ]
    pairs = router.preference_pairs(data, labels)
    # Standard: sending it to the strong model only costs more. Complex: both labels that
    # route to the small model lose quality. Ambiguous: the strong model is no better, so
    # only the label that pays for it is rejected; Standard routes the same way and is not.
    assert pairs == [
        (0, "Standard_Query", "Complex_Query"),
        (1, "Complex_Query", "Standard_Query"),
        (1, "Complex_Query", "Ambiguous_Query"),
        (2, "Ambiguous_Query", "Complex_Query"),
        (3, "Ambiguous_Query", "Complex_Query"),
    ]
    # A custom mapper changes the pairs: with Ambiguous sent to the strong model, the
    # all-wrong cell now prefers any cheap label over it.
    strong_ambiguous = _router(
        policy_models={
            "Standard_Query": "cheap",
            "Complex_Query": "strong",
            "Ambiguous_Query": "large",
        }
    )
    assert (2, "Ambiguous_Query", "Complex_Query") not in strong_ambiguous.preference_pairs(
        data, labels
    )


def test_parameters_are_checked_before_any_training() -> None:
    with pytest.raises(RouterError, match="two candidates"):
        CausalLMRouter(("a", "b", "c"), {"base_model": "x"})
    with pytest.raises(RouterError, match="policy_models"):
        _router(policy_models={"Standard_Query": "cheap"})
    with pytest.raises(RouterError, match="serve"):
        _router(serve="gpu-farm")
    with pytest.raises(RouterError, match="neither a folder nor an installed package"):
        CausalLMRouter.fit(
            oracle_data(MODELS), {"base_model": "no_such_base_model_pkg"}, ctx=FitContext()
        )
    assert issubclass(RouterUnavailable, RouterError)


def test_the_held_out_split_keeps_each_query_on_one_side() -> None:
    data = oracle_data(MODELS)
    train, held_out = split_held_out(data, 0.25, seed=3)
    assert len(train) + len(held_out) == len(data)
    assert not set(train.texts or []) & set(held_out.texts or [])
    assert len(set(held_out.texts or [])) == round(0.25 * len(set(data.texts or [])))


def test_dpo_changes_the_router_on_the_same_held_out_split(trained) -> None:
    router, _, held_out, _, info = trained
    assert info["dpo_pairs"] > 0
    assert info["policy_counts"]["Complex_Query"] > 0
    before, after = compare_stages(router, held_out, costs=COSTS)
    assert (before.label, after.label) == ("sft", "dpo")
    assert before.rows == after.rows == len(held_out)
    assert before.always_cheap == after.always_cheap < before.always_strong
    # DPO raises the probability of the oracle's label on queries it never trained on.
    assert after.oracle_probability > before.oracle_probability
    changed = max(
        abs(a - b)
        for name in router.stages["sft"]
        for a, b in zip(
            router.stages["sft"][name].ravel(), router.stages["dpo"][name].ravel(), strict=True
        )
    )
    assert changed > 0
    table = format_table([before, after])
    print("\n" + table)
    assert "cost savings vs strong" in table
    assert "accuracy on Complex_Query" in table
    assert sum(after.predicted.values()) == after.rows == sum(after.oracle.values())
    # The same table is the router type's held-out report, which the trainer logs with a run.
    report = router.held_out_report(held_out, costs=COSTS)
    assert report.table == table
    assert report.metrics["dpo.oracle_probability"] == after.oracle_probability
    assert report.metrics["sft.accuracy"] == before.accuracy
    # Other router types report nothing beyond the common metrics.
    vectors = np.random.default_rng(0).normal(size=(len(held_out), 8)).astype(np.float32)
    rows = TrainingData(embeddings=vectors, quality=held_out.quality, models=held_out.models)
    knn = BUILTIN_ROUTERS["knn"].fit(rows, {"k": 3}, ctx=FitContext())
    assert knn.held_out_report(held_out, costs=COSTS) is None


def test_scores_are_the_policy_mappers_probabilities(trained) -> None:
    router, _, held_out, _, _ = trained
    texts = (held_out.texts or [])[:6]
    probs = router.policy_probabilities(texts)
    scores = router.predict(np.zeros((len(texts), 4), dtype=np.float32), texts)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    cheap = [POLICIES.index("Standard_Query"), POLICIES.index("Ambiguous_Query")]
    np.testing.assert_allclose(scores[:, 0], probs[:, cheap].sum(axis=1), atol=1e-12)
    np.testing.assert_allclose(scores[:, 1], probs[:, POLICIES.index("Complex_Query")], atol=1e-12)
    with pytest.raises(RouterError, match="texts"):
        router.predict(np.zeros((1, 4), dtype=np.float32), None)
    # The evaluation serves what the scores say: the mapper's model for the likeliest label.
    evaluation = evaluate_policy_router(router, held_out, costs=COSTS)
    assert 0.0 <= evaluation.strong_share <= 1.0


def test_a_signed_bundle_round_trips_and_pins_its_base_model(trained, tmp_path: Path) -> None:
    router, _, held_out, base, _ = trained
    private, public = generate_ed25519()
    folder = tmp_path / "bundle"
    manifest = write_bundle(
        router,
        folder,
        name="r",
        version="1",
        candidates=[Candidate(m) for m in MODELS],
        signer=signer_from("ed25519", private),
        featurizer=minilm_pipeline(),
    )
    assert {"adapter_model.safetensors", "causallm.json"} <= set(manifest.files)
    meta = json.loads((folder / "causallm.json").read_text())
    assert meta["base_model"] == str(base)
    assert len(meta["base_sha256"]) == 64
    assert "model.safetensors" in meta["base_files"]
    loaded = load_bundle(folder, verifier_from("ed25519", public))
    assert run_probes(loaded) < 1e-6
    texts = (held_out.texts or [])[:4]
    np.testing.assert_allclose(
        loaded.router.predict(np.zeros((4, 4), dtype=np.float32), texts),
        router.predict(np.zeros((4, 4), dtype=np.float32), texts),
        atol=1e-9,
    )


def test_loading_refuses_a_base_model_whose_files_changed(trained, tmp_path: Path) -> None:
    import shutil

    router, _, _, base, _ = trained
    copy = tmp_path / "base"
    shutil.copytree(base, copy)
    params = {**router.params, "base_model": str(copy)}
    folder = tmp_path / "adapter"
    folder.mkdir()
    router.save(folder)
    CausalLMRouter.load(folder, MODELS, params)  # the same files: accepted
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "rms_norm_eps": 0.1}))
    with pytest.raises(RouterError, match=r"not the one this adapter was trained on.*config\.json"):
        CausalLMRouter.load(folder, MODELS, params)


# A gateway's process: loads the bundle's router with the default ``serve: auto`` and never
# imports torch itself; the worker process does.
_GATEWAY_LIKE = """
import json, sys
from pathlib import Path
import numpy as np
from routeiq.routing.routers import CausalLMRouter, RouterUnavailable
from routeiq.routing.routers.causallm_worker import WorkerScorer

args = json.loads(sys.argv[1])
served = CausalLMRouter.load(Path(args["folder"]), tuple(args["models"]), args["params"])
out = {
    "worker": isinstance(served._scorer, WorkerScorer) and served.out_of_process,
    "probabilities": served.policy_probabilities(args["texts"]).tolist(),
}
served._scorer.budget_s = 0.0  # past the budget: answered at once with the fallback signal
try:
    served.predict(np.zeros((len(args["texts"]), 4), dtype=np.float32), args["texts"])
    out["over_budget"] = None
except RouterUnavailable as exc:
    out["over_budget"] = str(exc)
served.close()
try:
    served.policy_probabilities(args["texts"])
    out["closed"] = None
except RouterUnavailable as exc:
    out["closed"] = str(exc)
out["torch_here"] = "torch" in sys.modules
print(json.dumps(out))
"""


def test_a_process_without_torch_scores_in_a_worker_and_signals_fallback(
    trained, tmp_path: Path
) -> None:
    import subprocess

    router, _, held_out, _, _ = trained
    folder = tmp_path / "adapter"
    folder.mkdir()
    router.save(folder)
    texts = (held_out.texts or [])[:3]
    args = {
        "folder": str(folder),
        "models": list(MODELS),
        "params": {**router.params, "latency_budget_ms": 120_000},
        "texts": texts,
    }
    run = subprocess.run(
        [sys.executable, "-c", _GATEWAY_LIKE, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["worker"] is True
    assert out["torch_here"] is False
    np.testing.assert_allclose(out["probabilities"], router.policy_probabilities(texts), atol=1e-6)
    assert "latency budget" in out["over_budget"]
    assert "closed" in out["closed"]
    assert not router.out_of_process  # fresh from fit, with torch here: in process


def test_a_worker_that_cannot_load_reports_why(trained, tmp_path: Path) -> None:
    router, _, _, base, _ = trained
    spec = {
        "base_dir": str(base),
        "adapter_file": str(tmp_path / "missing.safetensors"),
        "adapter_config": router.meta["adapter_config"],
        "max_chars": 100,
        "device": "cpu",
    }
    starting = WorkerScorer(spec, budget_s=1.0, start_timeout_s=120.0)
    starting.start(wait=False)
    try:
        with pytest.raises(RouterUnavailable, match="still loading"):
            starting.probabilities(["a query"])
        with pytest.raises(RouterError, match="cannot load the model"):
            starting.start(wait=True)
        with pytest.raises(RouterUnavailable, match="cannot load the model"):
            starting.probabilities(["a query"])
        # Once the pause is over a request restarts it in the background, without waiting.
        starting.restart_after_s = 0.0
        with pytest.raises(RouterUnavailable, match="still loading"):
            starting.probabilities(["a query"])
    finally:
        starting.close()
    with pytest.raises(RouterUnavailable, match="closed"):
        starting.probabilities(["a query"])


class _FixedScorer:
    """Label probabilities set by the test, per query text: checks the evaluation's arithmetic
    without a language model."""

    def __init__(self, probabilities: dict[str, list[float]]) -> None:
        self.table = probabilities

    def probabilities(self, texts: Sequence[str]) -> NDArray[np.float64]:
        return np.array([self.table[t] for t in texts], dtype=np.float64)

    def close(self) -> None:
        return None


def test_the_policy_evaluation_counts_what_the_router_would_serve() -> None:
    standard, complex_, ambiguous = (np.eye(3)[POLICIES.index(p)].tolist() for p in POLICIES)
    rows = {
        "easy": ([1.0, 1.0], standard),  # oracle Standard, named Standard: small, right
        "hard one": ([0.0, 1.0], standard),  # oracle Complex, named Standard: small, wrong
        "hard two": ([0.0, 1.0], complex_),  # oracle Complex, named Complex: large, right
        "riddle": ([0.0, 0.0], complex_),  # oracle Ambiguous, named Complex: large, wrong
        "ungraded": ([np.nan, 1.0], ambiguous),  # no oracle label: not evaluated
    }
    data = TrainingData(
        embeddings=np.zeros((5, 2), dtype=np.float32),
        quality=np.array([q for q, _ in rows.values()]),
        models=MODELS,
        texts=list(rows),
    )
    router = _router()
    router._scorer = _FixedScorer({t: p for t, (_, p) in rows.items()})
    result = evaluate_policy_router(router, data, costs={"small": 0.001, "large": 0.01})
    assert result.rows == 4
    assert result.accuracy == pytest.approx(0.5)
    assert (result.always_cheap, result.always_strong) == (0.25, 0.75)
    assert result.cost_usd == pytest.approx((0.001 * 2 + 0.01 * 2) / 4)
    assert result.cost_savings == pytest.approx(1 - 0.0055 / 0.01)
    assert result.strong_share == 0.5
    assert result.label_accuracy == 0.5
    assert result.oracle_probability == 0.5
    assert result.predicted == {"Standard_Query": 2, "Complex_Query": 2, "Ambiguous_Query": 0}
    assert result.oracle == {"Standard_Query": 1, "Complex_Query": 2, "Ambiguous_Query": 1}
    assert result.per_policy_accuracy == {
        "Standard_Query": 1.0,
        "Complex_Query": 0.5,
        "Ambiguous_Query": 0.0,
    }
    with pytest.raises(RouterError, match="no cost"):
        evaluate_policy_router(router, data, costs={"small": 0.001})
