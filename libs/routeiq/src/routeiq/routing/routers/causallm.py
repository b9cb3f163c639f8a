"""Causal-LM router: a small causal LM fine-tuned with LoRA to name a query's oracle policy.

Both candidates' graded answers to a query give an oracle cell and a policy label
(``routeiq.routing.oracle``: ``Standard_Query``, ``Complex_Query``, ``Ambiguous_Query``). The
router is trained in two stages (``causallm_lm``): SFT on (query → label), then DPO on
(chosen, rejected) label pairs from the same cells: the oracle's label is preferred over every
label that would have routed to a model that did worse on that query (or as well, at a higher
price). The policy mapper (``policy_models``; by default Standard and Ambiguous → the cheap
model, Complex → the strong one) turns P(label | query) into what every router returns: one
score per candidate, here the probability that the policy sends the query to it. The
threshold strategy's win score is then ``P(strong) − P(cheap)``, calibrated like any router's,
and the cost-aware strategy's argmax at λ = 0 is the mapper's own choice.

The base model is the operator's (``base_model``: a folder, or an installed package whose
folder holds it) and is never downloaded. The bundle holds the LoRA adapter in safetensors
and ``causallm.json``: the base's identity and the sha256 of its files, which ``load`` checks
before serving. Scoring needs torch, so a gateway scores in a worker process
(``causallm_worker``) within a latency budget, and falls back when it cannot.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from routeiq.errors import ConfigError
from routeiq.routing.oracle import POLICIES, GradeScale, Oracle, OracleMatrix
from routeiq.routing.routers.base import F32, F64, FitContext, Router, RouterError, TrainingData
from routeiq.routing.routers.causallm_worker import (
    InlineScorer,
    RouterUnavailable,
    Scorer,
    WorkerScorer,
    scorer_for,
)

__all__ = ["CausalLMRouter", "RouterUnavailable", "base_identity", "resolve_base"]

ADAPTER = "adapter_model.safetensors"
META = "causallm.json"
# Files that define what a base model computes: weights, configs, tokenizer.
_BASE_SUFFIXES = (".safetensors", ".json", ".txt", ".model")


def resolve_base(setting: str) -> Path:
    """The base model's folder: ``setting`` itself when it is a folder, else the folder of the
    installed package of that name (its ``model/`` subfolder when it has one)."""
    if not setting:
        raise RouterError("causallm: parameter base_model (a folder or a package) is required")
    path = Path(setting)
    if path.is_dir():
        return path.resolve()
    try:
        spec = importlib.util.find_spec(setting)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise RouterError(
            f"causallm: base model {setting!r} is neither a folder nor an installed package"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    return (root / "model" if (root / "model").is_dir() else root).resolve()


def base_identity(folder: Path) -> dict[str, Any]:
    """The sha256 of every weight, config and tokenizer file of the base, and one digest of
    them all (file name and hash), which a bundle records and ``load`` compares."""
    files = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in _BASE_SUFFIXES:
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            files[path.name] = digest.hexdigest()
    if not any(name.endswith(".safetensors") for name in files):
        raise RouterError(f"causallm: no safetensors weights in the base model folder {folder}")
    overall = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    return {"sha256": overall, "files": files}


class CausalLMRouter(Router):
    kind = "causallm"
    needs_text = True
    default_params: ClassVar[Mapping[str, Any]] = {
        "base_model": "",
        # The oracle's two models; "" = the lowest / highest mean observed quality.
        "cheap": "",
        "strong": "",
        "correct_at": 0.75,
        "wrong_at": 0.25,
        # {cheap grade: {strong grade: policy}}; empty = the default matrix.
        "oracle_matrix": {},
        # policy → "cheap", "strong" or a candidate's name.
        "policy_models": {
            "Standard_Query": "cheap",
            "Complex_Query": "strong",
            "Ambiguous_Query": "cheap",
        },
        "max_query_chars": 1500,
        "max_length": 512,
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "lora_target_modules": "all-linear",
        "batch_size": 8,
        "sft_epochs": 3,
        "sft_lr": 2e-4,
        "dpo_epochs": 2,
        "dpo_lr": 5e-5,
        "dpo_beta": 0.1,
        # "auto": in process when torch is loaded here (trainer), else a worker process.
        "serve": "auto",
        "serve_device": "cpu",
        # Per query; past it (or while the worker is loading or broken) RouterUnavailable.
        "latency_budget_ms": 250.0,
        "worker_start_timeout_s": 180.0,
        "worker_max_pending": 8,
        "worker_threads": 2,
    }

    def __init__(
        self,
        models: Sequence[str],
        params: Mapping[str, Any] | None = None,
        *,
        adapter: Mapping[str, np.ndarray[Any, Any]] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(models, params)
        p = self.params
        if len(self.models) != 2:
            raise RouterError(
                f"causallm: routes between two candidates (a cheap and a strong model), "
                f"got {len(self.models)}: {list(self.models)}"
            )
        for key in ("cheap", "strong"):
            if p[key] and p[key] not in self.models:
                raise RouterError(f"causallm: {key} must be one of {list(self.models)} or empty")
        if str(p["serve"]) not in {"auto", "inline", "worker"}:
            raise RouterError("causallm: serve must be auto, inline or worker")
        try:
            self.matrix = (
                OracleMatrix.from_mapping(p["oracle_matrix"])
                if p["oracle_matrix"]
                else OracleMatrix()
            )
            self.scale = GradeScale(float(p["correct_at"]), float(p["wrong_at"]))
        except ConfigError as exc:
            raise RouterError(f"causallm: {exc}") from exc
        mapping = dict(p["policy_models"])
        if set(mapping) != set(POLICIES):
            raise RouterError(f"causallm: policy_models must map exactly {list(POLICIES)}")
        for target in mapping.values():
            if target not in {"cheap", "strong", *self.models}:
                raise RouterError(
                    f"causallm: policy_models target {target!r} is not cheap, strong or one "
                    f"of {list(self.models)}"
                )
        self.adapter = dict(adapter or {})
        self.meta = dict(meta or {})
        self._scorer: Scorer | None = None
        self.stages: dict[str, dict[str, np.ndarray[Any, Any]]] = {}  # after fit, for evaluation

    # -- labels ------------------------------------------------------------------------------

    def roles(self, data: TrainingData | None = None) -> tuple[str, str]:
        """(cheap, strong): the parameters, else the trained ones, else by mean quality."""
        cheap, strong = str(self.params["cheap"]), str(self.params["strong"])
        if not cheap and "cheap" in self.meta:
            cheap = str(self.meta["cheap"])
        if not strong and "strong" in self.meta:
            strong = str(self.meta["strong"])
        if not (cheap and strong):
            if data is None:
                raise RouterError("causallm: cheap and strong are unknown (not trained)")
            order = [self.models[i] for i in np.argsort(data.priors(), kind="stable")]
            cheap = cheap or next(m for m in order if m != strong)
            strong = strong or next(m for m in reversed(order) if m != cheap)
        return cheap, strong

    def oracle(self, data: TrainingData | None = None) -> Oracle:
        cheap, strong = self.roles(data)
        try:
            return Oracle(cheap, strong, self.scale, self.matrix)
        except ConfigError as exc:
            raise RouterError(f"causallm: {exc}") from exc

    def routed_model(self, policy: str, data: TrainingData | None = None) -> str:
        """The candidate the policy mapper sends ``policy`` to."""
        cheap, strong = self.roles(data)
        target = str(self.params["policy_models"][policy])
        return {"cheap": cheap, "strong": strong}.get(target, target)

    def label(self, data: TrainingData) -> list[str | None]:
        """Each row's oracle policy (None where either model's answer was not graded)."""
        oracle = self.oracle(data)
        cols = [self.models.index(oracle.cheap), self.models.index(oracle.strong)]
        out: list[str | None] = []
        for q_cheap, q_strong in data.quality[:, cols]:
            verdict = oracle.label({oracle.cheap: float(q_cheap), oracle.strong: float(q_strong)})
            out.append(verdict.policy if verdict is not None else None)
        return out

    def preference_pairs(
        self, data: TrainingData, labels: Sequence[str | None]
    ) -> list[tuple[int, str, str]]:
        """(row, chosen, rejected): the oracle's label against each label that routes to a
        model with more regret on that row (lower quality; at equal quality, the strong one,
        which costs more). Labels routing to equally good models are not contrasted."""
        _, strong = self.roles(data)
        pairs: list[tuple[int, str, str]] = []
        for i, chosen in enumerate(labels):
            if chosen is None:
                continue
            quality = {m: float(q) for m, q in zip(self.models, data.quality[i], strict=True)}

            def regret(policy: str, row: Mapping[str, float] = quality) -> float:
                model = self.routed_model(policy, data)
                return max(row.values()) - row[model] + (1e-6 if model == strong else 0.0)

            pairs.extend((i, chosen, r) for r in POLICIES if regret(r) > regret(chosen) + 1e-9)
        return pairs

    def prompts(self, data: TrainingData) -> list[str]:
        """Each row's prompt; shards carry no text, so only dataset files can train this."""
        if data.texts is None:
            raise RouterError(
                "causallm: the prompts are the query texts, which training shards never carry; "
                "train it from a dataset file (routeiq eval --train FILE --router causallm)"
            )
        from routeiq.routing.routers.causallm_lm import prompt_for

        return [prompt_for(t, int(self.params["max_query_chars"])) for t in data.texts]

    # -- training ----------------------------------------------------------------------------

    @classmethod
    def fit(
        cls, data: TrainingData, params: Mapping[str, Any] | None = None, *, ctx: FitContext
    ) -> Self:
        router = cls(data.models, params)
        prompts = router.prompts(data)
        base = resolve_base(str(router.params["base_model"]))
        identity = base_identity(base)
        labels = router.label(data)
        rows = [i for i, x in enumerate(labels) if x is not None]
        if not rows:
            raise RouterError("causallm: no row has both models' grades, so no oracle label")
        cheap, strong = router.roles(data)
        from routeiq.routing.routers.causallm_lm import train_stages

        pairs = router.preference_pairs(data, labels)
        stages = train_stages(
            base,
            [prompts[i] for i in rows],
            [str(labels[i]) for i in rows],
            [(rows.index(i), c, r) for i, c, r in pairs],
            router.params,
            ctx,
        )
        counts = {p: sum(1 for x in labels if x == p) for p in POLICIES}
        ctx.info["policy_counts"] = counts
        router.meta = {
            "base_model": str(router.params["base_model"]),
            "base_path": str(base),
            "base_sha256": identity["sha256"],
            "base_files": identity["files"],
            "adapter_config": stages.adapter_config,
            "cheap": cheap,
            "strong": strong,
            "policies": list(POLICIES),
            "train_policy_counts": counts,
            "dpo_pairs": len(pairs),
        }
        router.stages = {"sft": stages.sft}
        if stages.dpo is not None:
            router.stages["dpo"] = stages.dpo
        router.adapter = stages.dpo if stages.dpo is not None else stages.sft
        return router

    def stage(self, name: str) -> CausalLMRouter:
        """This router with the adapter of one training stage ("sft" or "dpo")."""
        if name not in self.stages:
            raise RouterError(f"causallm: no {name!r} stage (have {sorted(self.stages)})")
        return type(self)(self.models, self.params, adapter=self.stages[name], meta=self.meta)

    # -- serving -----------------------------------------------------------------------------

    def _spec(self, adapter_file: Path) -> dict[str, Any]:
        return {
            "base_dir": self.meta["base_path"],
            "adapter_file": str(adapter_file),
            "adapter_config": self.meta["adapter_config"],
            "max_chars": int(self.params["max_query_chars"]),
            "device": str(self.params["serve_device"]),
            "threads": int(self.params["worker_threads"]),
        }

    def policy_probabilities(self, texts: Sequence[str]) -> F64:
        """(n, 3): P(label | query) in ``POLICIES`` order."""
        if self._scorer is None:
            if not self.adapter:
                raise RouterError("causallm: not trained")
            # A router fresh from ``fit`` (torch loaded) scores in process from its tensors.
            self._scorer = _in_memory_scorer(self)
        return self._scorer.probabilities(list(texts))

    def held_out_report(self, held_out: TrainingData, *, costs: Mapping[str, float]) -> Any:
        """The design's table, after SFT and after DPO (``routeiq.routing.policy_eval``)."""
        from routeiq.routing.policy_eval import held_out_report  # it imports this module

        return held_out_report(self, held_out, costs=costs)

    def predict(self, embeddings: F32, texts: Sequence[str] | None = None) -> F64:
        if texts is None:
            raise RouterError("causallm: prediction needs the query texts")
        probs = self.policy_probabilities(texts)
        out = np.zeros((len(texts), len(self.models)), dtype=np.float64)
        for j, policy in enumerate(POLICIES):
            out[:, self.models.index(self.routed_model(policy))] += probs[:, j]
        return out

    @property
    def out_of_process(self) -> bool:
        """Whether scoring waits on the worker process (up to the latency budget): a caller on
        an event loop should then route in a thread."""
        return isinstance(self._scorer, WorkerScorer)

    def close(self) -> None:
        """Stop the worker process, if any (model sync swapped this router out)."""
        if self._scorer is not None:
            self._scorer.close()

    # -- bundle ------------------------------------------------------------------------------

    def save(self, folder: Path) -> list[str]:
        from safetensors.numpy import save_file

        if not self.adapter or not self.meta:
            raise RouterError("causallm: nothing to save (not trained)")
        save_file(
            {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in self.adapter.items()},
            str(folder / ADAPTER),
        )
        (folder / META).write_text(json.dumps(self.meta, indent=2, sort_keys=True))
        return [ADAPTER, META]

    @classmethod
    def load(cls, folder: Path, models: Sequence[str], params: Mapping[str, Any]) -> Self:
        try:
            meta = json.loads((folder / META).read_text())
        except (OSError, ValueError) as exc:
            raise RouterError(f"causallm: cannot read {META}: {exc}") from exc
        router = cls(models, params, meta=meta)
        base = resolve_base(str(router.params["base_model"]))
        found = base_identity(base)
        if found["sha256"] != meta.get("base_sha256"):
            changed = sorted(
                name
                for name in set(found["files"]) | set(meta.get("base_files", {}))
                if found["files"].get(name) != meta.get("base_files", {}).get(name)
            )
            raise RouterError(
                f"causallm: the base model {router.params['base_model']!r} at {base} is not the "
                f"one this adapter was trained on (sha256 {found['sha256'][:12]}…, bundle "
                f"{str(meta.get('base_sha256'))[:12]}…; differing files: {changed})"
            )
        router.meta["base_path"] = str(base)
        router._scorer = scorer_for(
            router._spec(folder / ADAPTER), router.params, torch_loaded="torch" in sys.modules
        )
        return router


def _in_memory_scorer(router: CausalLMRouter) -> InlineScorer:
    """An in-process scorer over the router's tensors (written to a scratch safetensors file,
    the one format ``InlineScorer`` reads)."""
    import tempfile

    from safetensors.numpy import save_file

    with tempfile.TemporaryDirectory(prefix="routeiq-causallm-") as tmp:
        path = Path(tmp) / ADAPTER
        save_file(
            {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in router.adapter.items()},
            str(path),
        )
        return InlineScorer(router._spec(path))
