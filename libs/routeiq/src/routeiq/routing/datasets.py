"""Benchmark datasets as routing tables: prompts × candidate models → quality in [0, 1].

Loaders for the public data the project ships in ``data/`` (RouteLLM's GSM8K and MT-Bench
with GPT-4 / Mixtral outcomes, LLMRouter's 9-model scores and prices) and for any CSV with a
prompt column and one boolean or numeric score column per model. The same tables feed the
offline upstream (recorded answers), the replay driver, training and ``routeiq eval``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from routeiq.errors import ConfigError

GPT4 = "gpt-4-1106-preview"
MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens."""

    input_per_m: float
    output_per_m: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_m + output_tokens * self.output_per_m) / 1e6


# List prices at the time the RouteLLM data was recorded (OpenAI; Mixtral as in LLMRouter).
ROUTELLM_PRICES = {
    GPT4: ModelPrice(10.0, 30.0),
    MIXTRAL: ModelPrice(0.6, 0.6),
}


@dataclass
class RoutingDataset:
    """Prompts and every candidate's quality on each (NaN where unknown)."""

    name: str
    ids: list[str]
    prompts: list[str]
    models: tuple[str, ...]
    scores: NDArray[np.float64]  # (n, m)
    prices: dict[str, ModelPrice] = field(default_factory=dict)
    responses: list[dict[str, str]] = field(default_factory=list)
    strong: str | None = None
    weak: str | None = None

    def __post_init__(self) -> None:
        n = len(self.prompts)
        if self.scores.shape != (n, len(self.models)) or len(self.ids) != n:
            raise ValueError(
                f"{self.name}: {n} prompts, {len(self.ids)} ids, {len(self.models)} models but "
                f"scores of shape {self.scores.shape}"
            )
        if not self.responses:
            self.responses = [{} for _ in range(n)]

    def __len__(self) -> int:
        return len(self.prompts)

    def column(self, model: str) -> NDArray[np.float64]:
        """One model's quality per prompt."""
        return self.scores[:, self.models.index(model)]

    def subset(self, index: Sequence[int] | NDArray[np.int64]) -> RoutingDataset:
        idx = [int(i) for i in index]
        return replace(
            self,
            ids=[self.ids[i] for i in idx],
            prompts=[self.prompts[i] for i in idx],
            scores=self.scores[idx],
            responses=[self.responses[i] for i in idx],
        )

    def split(
        self, *, test_fraction: float = 0.5, seed: int = 0
    ) -> tuple[RoutingDataset, RoutingDataset]:
        """A fixed random split into (train, test) by a seeded permutation."""
        perm = np.random.default_rng(seed).permutation(len(self))
        cut = len(self) - round(len(self) * test_fraction)
        return self.subset(np.sort(perm[:cut])), self.subset(np.sort(perm[cut:]))


def default_data_dir() -> Path:
    """The repository's ``data/`` folder (the shipped copy of the public benchmark data)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "data" / "routellm"
        if candidate.is_dir():
            return candidate.parent
    raise ConfigError(
        f"no data/ folder with the benchmark data above {here}; pass the data folder explicitly"
    )


def prompt_id(text: str) -> str:
    """A stable id for a prompt (a hash, so ids never carry text)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _bool(value: str) -> float:
    v = value.strip().lower()
    if v in {"true", "1", "yes"}:
        return 1.0
    if v in {"false", "0", "no"}:
        return 0.0
    if v in {"", "nan", "none"}:
        return float("nan")
    return float(v)


def _contaminated(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {json.loads(line)["eval_prompt"] for line in path.read_text().splitlines() if line}


@cache
def _gsm8k(root: Path, drop_contaminated: bool) -> RoutingDataset:
    folder = root / "routellm" / "gsm8k"
    csv.field_size_limit(1 << 28)
    with (folder / "gsm8k_responses.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    bad = _contaminated(folder / "contaminated_prompts.jsonl") if drop_contaminated else set()
    models = (GPT4, MIXTRAL)
    kept = [r for r in rows if r["prompt"] not in bad]
    return RoutingDataset(
        name="gsm8k",
        ids=[f"gsm8k-{prompt_id(r['prompt'])}" for r in kept],
        prompts=[r["prompt"] for r in kept],
        models=models,
        scores=np.array([[_bool(r[m]) for m in models] for r in kept], dtype=np.float64),
        prices=dict(ROUTELLM_PRICES),
        responses=[{m: r.get(f"{m}_response", "") for m in models} for r in kept],
        strong=GPT4,
        weak=MIXTRAL,
    )


def load_gsm8k(root: Path | None = None, *, drop_contaminated: bool = True) -> RoutingDataset:
    """RouteLLM's GSM8K: 1,319 questions (1,307 without the contaminated ones), 2 models."""
    ds = _gsm8k((root or default_data_dir()).resolve(), drop_contaminated)
    return replace(ds, ids=list(ds.ids), prompts=list(ds.prompts), responses=list(ds.responses))


_ANSWER = re.compile(
    r"\[The Start of Assistant's Answer\]\n(.*?)\n\[The End of Assistant's Answer\]", re.S
)


def load_mt_bench(root: Path | None = None, *, drop_contaminated: bool = True) -> RoutingDataset:
    """RouteLLM's MT-Bench: the first turn routes; quality = mean GPT-4 judge score / 10.

    As RouteLLM does, a question's score for a model averages its judgements over both turns.
    """
    folder = (root or default_data_dir()) / "routellm" / "mt_bench"
    questions = [json.loads(x) for x in (folder / "question.jsonl").read_text().splitlines() if x]
    bad = _contaminated(folder / "contaminated_prompts.jsonl") if drop_contaminated else set()
    questions = [q for q in questions if q["turns"][0] not in bad and q["turns"][1] not in bad]
    judgements = [
        json.loads(x) for x in (folder / "judgements.jsonl").read_text().splitlines() if x
    ]
    models = (GPT4, MIXTRAL)
    totals: dict[tuple[str, str], list[float]] = {}
    answers: dict[tuple[str, str], str] = {}
    for j in judgements:
        key = (str(j["question_id"]), j["model"])
        totals.setdefault(key, []).append(float(j["score"]))
        if str(j["turn"]) == "1":
            found = _ANSWER.search(j["user_prompt"])
            if found:
                answers[key] = found.group(1)
    ids, prompts, scores, responses = [], [], [], []
    for q in questions:
        qid = str(q["question_id"])
        row = [
            float(np.mean(totals[(qid, m)])) / 10.0 if (qid, m) in totals else np.nan
            for m in models
        ]
        ids.append(f"mt_bench-{qid}")
        prompts.append(q["turns"][0])
        scores.append(row)
        responses.append({m: answers.get((qid, m), "") for m in models})
    return RoutingDataset(
        name="mt_bench",
        ids=ids,
        prompts=prompts,
        models=models,
        scores=np.array(scores, dtype=np.float64),
        prices=dict(ROUTELLM_PRICES),
        responses=responses,
        strong=GPT4,
        weak=MIXTRAL,
    )


def llmrouter_prices(root: Path | None = None) -> dict[str, ModelPrice]:
    """LLMRouter's candidate models and their prices (USD per million tokens)."""
    path = (root or default_data_dir()) / "llmrouter" / "default_llm.json"
    return {
        name: ModelPrice(float(info["input_price"]), float(info["output_price"]))
        for name, info in json.loads(path.read_text()).items()
    }


def load_llmrouter(root: Path | None = None, *, split: str = "train") -> RoutingDataset:
    """LLMRouter's queries with the scores of 9 models (``split``: train 5,608 / test 500)."""
    if split not in {"train", "test"}:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    base = root or default_data_dir()
    rows = json.loads((base / "llmrouter" / f"dcrouter_{split}.json").read_text())
    models = tuple(rows[0]["scores"].keys())
    prices = llmrouter_prices(base)
    return RoutingDataset(
        name=f"llmrouter-{split}",
        ids=[f"llmrouter-{prompt_id(r['question'])}" for r in rows],
        prompts=[r["question"] for r in rows],
        models=models,
        scores=np.array([[float(r["scores"][m]) for m in models] for r in rows]),
        prices={m: prices[m] for m in models if m in prices},
    )


def load_csv(
    path: Path,
    *,
    prompt_column: str = "prompt",
    models: Sequence[str] | None = None,
    prices: dict[str, ModelPrice] | None = None,
) -> RoutingDataset:
    """Any CSV with a prompt column and one boolean or numeric score column per model.

    Columns named ``<model>_response`` are taken as that model's recorded answer. Without
    ``models``, every other column whose values all parse as booleans or numbers is a model.
    """
    csv.field_size_limit(1 << 28)
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        columns = list(reader.fieldnames or [])
    if prompt_column not in columns:
        raise ConfigError(f"{path}: no column {prompt_column!r} (columns: {columns})")
    if models is None:
        models = []
        for col in columns:
            if col == prompt_column or col.endswith("_response"):
                continue
            try:
                [_bool(r[col]) for r in rows]
            except ValueError:
                continue
            models.append(col)
    if not models:
        raise ConfigError(f"{path}: no boolean or numeric model score columns")
    missing = [m for m in models if m not in columns]
    if missing:
        raise ConfigError(f"{path}: model columns {missing} not found")
    scores = np.array([[_bool(r[m]) for m in models] for r in rows], dtype=np.float64)
    finite = scores[np.isfinite(scores)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        # Scores on another scale (say 1-10) are rescaled to [0, 1] per the observed range.
        scores = (scores - finite.min()) / max(finite.max() - finite.min(), 1e-12)
    return RoutingDataset(
        name=path.stem,
        ids=[f"{path.stem}-{prompt_id(r[prompt_column])}" for r in rows],
        prompts=[r[prompt_column] for r in rows],
        models=tuple(models),
        scores=scores,
        prices=dict(prices or {}),
        responses=[{m: r.get(f"{m}_response", "") for m in models} for r in rows],
        strong=models[0] if len(models) == 2 else None,
        weak=models[1] if len(models) == 2 else None,
    )


def load_named(name: str, root: Path | None = None) -> RoutingDataset:
    """``gsm8k``, ``mt_bench``, ``llmrouter-train``, ``llmrouter-test`` or a CSV path."""
    if name == "gsm8k":
        return load_gsm8k(root)
    if name in {"mt_bench", "mt-bench"}:
        return load_mt_bench(root)
    if name.startswith("llmrouter"):
        return load_llmrouter(root, split=name.split("-", 1)[1] if "-" in name else "train")
    path = Path(name)
    if path.suffix == ".csv" and path.is_file():
        return load_csv(path)
    raise ConfigError(
        f"unknown dataset {name!r}: use gsm8k, mt_bench, llmrouter-train, llmrouter-test or a "
        ".csv file"
    )
