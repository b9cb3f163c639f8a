"""Router types and strategy kinds from entry points: discovered from real distribution
metadata (no pip at test time), checked before use, fitted, bundled and loaded by name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from routeiq.errors import ConfigError
from routeiq.routing.bundle import (
    Candidate,
    HmacKey,
    generate_ed25519,
    load_bundle,
    run_probes,
    verify_bundle,
    write_bundle,
)
from routeiq.routing.featurizer import minilm_pipeline
from routeiq.routing.routers import (
    BUILTIN_ROUTERS,
    ROUTER_TYPES,
    FitContext,
    RouterError,
    TrainingData,
    router_class,
)
from routeiq.routing.strategies import (
    BUILTIN_STRATEGIES,
    STRATEGY_KINDS,
    ModelOption,
    RouteInput,
    strategy_class,
)
from routeiq.routing.strategies import BundleHolder as Holder
from routeiq_trainer.config import TrainerSettings
from routeiq_trainer.core.requests import TrainRequest, resolve_options
from unit.routing.plugin_env import Site, forget_plugins, open_site

KEY = HmacKey(b"p" * 32)
DIST = "broken-plugin"

# (entry-point target's module source, what the error says) by the problem it has.
BROKEN = {
    "wrong_base": (
        "class NotARouter:\n    kind = 'bad'\n",
        "is <class '{module}.NotARouter'>, not a subclass of routeiq.routing.routers.base.Router",
    ),
    "name_mismatch": (
        "from routeiq.routing.routers import KNNRouter\n\n"
        "class Renamed(KNNRouter):\n    kind = 'other'\n",
        "Renamed.kind is 'other', but the entry point names it 'bad'",
    ),
    "import_error": (
        "raise ImportError('libfoo is not installed')\n",
        "cannot be imported: ImportError('libfoo is not installed')",
    ),
    "abstract": (
        "from routeiq.routing.routers import Router\n\nclass Half(Router):\n    kind = 'bad'\n",
        "Half is abstract (does not implement fit, load, predict, save)",
    ),
}


@pytest.fixture
def site(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Site]:
    yield from open_site(monkeypatch, tmp_path)


TARGETS = {
    "wrong_base": "NotARouter",
    "name_mismatch": "Renamed",
    "import_error": "Anything",
    "abstract": "Half",
}


def test_without_plugins_only_the_built_ins_are_known() -> None:
    forget_plugins()
    assert list(ROUTER_TYPES) == list(BUILTIN_ROUTERS)
    assert list(STRATEGY_KINDS) == list(BUILTIN_STRATEGIES)
    with pytest.raises(RouterError, match="unknown router type 'example_ridge'; known: knn"):
        router_class("example_ridge")


def test_built_ins_are_keyed_by_their_own_kind_in_declaration_order() -> None:
    for builtins in (BUILTIN_ROUTERS, BUILTIN_STRATEGIES):
        assert all(name == cls.kind for name, cls in builtins.items())
    assert list(BUILTIN_ROUTERS)[:2] == ["knn", "svm"]
    assert list(BUILTIN_STRATEGIES)[:3] == ["random", "cheapest", "strongest"]


def test_the_example_is_discovered_through_its_entry_points(site: Site) -> None:
    site.install_example()
    ridge = router_class("example_ridge")
    assert (ridge.__module__, ridge.__name__) == ("routeiq_plugin_example.router", "RidgeRouter")
    assert list(ROUTER_TYPES) == [*BUILTIN_ROUTERS, "example_ridge"]
    assert ROUTER_TYPES["example_ridge"] is ridge
    length = strategy_class("example_length")
    assert length.__name__ == "LengthTierStrategy"
    assert list(STRATEGY_KINDS) == [*BUILTIN_STRATEGIES, "example_length"]
    assert router_class("knn") is BUILTIN_ROUTERS["knn"]
    # Listed once: a distribution installed later is seen only after a refresh.
    declared = ROUTER_TYPES.declared()
    assert ROUTER_TYPES.declared() is declared


@pytest.mark.parametrize("problem", sorted(BROKEN))
def test_a_broken_plugin_is_an_error_naming_it_and_breaks_nothing_else(
    site: Site, problem: str
) -> None:
    site.install_example()
    module = f"broken_{problem}_router"
    source, expected = BROKEN[problem]
    target = f"{module}:{TARGETS[problem]}"
    site.install(DIST, {"routeiq.routers": {"bad": target}}, modules={module: source})
    where = f"entry point 'bad = {target}' (group routeiq.routers) of distribution {DIST}"
    with pytest.raises(RouterError) as raised:
        router_class("bad")
    message = str(raised.value)
    assert where in message
    assert expected.format(module=module) in message
    # The name is declared (a trainer asked for it reaches this error, not "unknown").
    assert "bad" in ROUTER_TYPES
    with pytest.raises(RouterError, match="distribution broken-plugin"):
        ROUTER_TYPES["bad"]
    # Other lookups, built-in or plugin, are unaffected; a start-up check reports it.
    assert router_class("mf") is BUILTIN_ROUTERS["mf"]
    assert router_class("example_ridge").kind == "example_ridge"
    assert ROUTER_TYPES.problems() == {"bad": message}
    with pytest.raises(RouterError, match="bad = "):
        ROUTER_TYPES.check()


def test_a_plugin_cannot_take_a_built_in_name(site: Site) -> None:
    site.install_example()
    site.install(
        "clashing-plugin",
        {
            "routeiq.routers": {"knn": "routeiq_plugin_example.router:RidgeRouter"},
            "routeiq.strategies": {"cheapest": "routeiq_plugin_example.strategy:X"},
        },
    )
    with pytest.raises(RouterError, match="'knn' is built in, and a plugin declares it too") as r:
        router_class("knn")
    assert "'knn = routeiq_plugin_example.router:RidgeRouter'" in str(r.value)
    assert "of distribution clashing-plugin" in str(r.value)
    with pytest.raises(ConfigError, match=r"strategy kind 'cheapest' is built in.*clashing-plugin"):
        strategy_class("cheapest")
    assert router_class("svm") is BUILTIN_ROUTERS["svm"]
    assert strategy_class("random") is BUILTIN_STRATEGIES["random"]


def test_a_name_two_distributions_declare_is_refused(site: Site) -> None:
    site.install_example()
    site.install("copycat", {"routeiq.routers": {"example_ridge": "copycat_mod:RidgeRouter"}})
    with pytest.raises(RouterError, match="declared by several plugins") as raised:
        router_class("example_ridge")
    assert "routeiq-plugin-example" in str(raised.value)
    assert "copycat" in str(raised.value)


def test_a_strategy_plugin_must_be_a_strategy(site: Site) -> None:
    site.install_example()
    site.install(
        DIST, {"routeiq.strategies": {"example_ridge": "routeiq_plugin_example.router:RidgeRouter"}}
    )
    with pytest.raises(ConfigError, match=r"not a subclass of routeiq\.routing\.strategies\.base"):
        strategy_class("example_ridge")
    assert strategy_class("example_length").kind == "example_length"


def test_the_example_strategy_routes_by_length(site: Site) -> None:
    site.install_example()
    cls = strategy_class("example_length")
    strategy = cls.from_config("by-length", {"max_chars": 20}, holder=Holder())
    options = [
        ModelOption("big", input_price=10.0, output_price=30.0, quality_rank=0.9),
        ModelOption("small", input_price=0.1, output_price=0.3, quality_rank=0.4),
    ]
    assert strategy.choose(RouteInput("short one"), options).model == "small"
    assert strategy.choose(RouteInput("a much longer question, surely"), options).model == "big"
    with pytest.raises(ConfigError, match="max_chars must be a positive integer"):
        cls.from_config("x", {"max_chars": 0}, holder=Holder())
    with pytest.raises(ConfigError, match="unknown parameter"):
        cls.from_config("x", {"limit": 3}, holder=Holder())


def test_a_plugin_router_fits_bundles_and_loads_like_a_built_in(
    site: Site, synthetic: tuple[TrainingData, TrainingData], tmp_path: Path
) -> None:
    site.install_example()
    train, test = synthetic
    router = router_class("example_ridge").fit(train, {"alpha": 0.5}, ctx=FitContext())
    folder = tmp_path / "bundle"
    manifest = write_bundle(
        router,
        folder,
        name="r",
        version="8",
        candidates=[Candidate(m) for m in train.models],
        signer=KEY,
        featurizer=minilm_pipeline(),
    )
    assert manifest.router_type == "example_ridge"
    assert "example_ridge.safetensors" in verify_bundle(folder, KEY).files
    loaded = load_bundle(folder, KEY)
    assert type(loaded.router) is type(router)
    assert loaded.router.params == {"alpha": 0.5}
    assert np.array_equal(loaded.router.predict(test.embeddings), router.predict(test.embeddings))
    assert run_probes(loaded) < 1e-9
    # It learned the task: the better model by its predictions matches the labels.
    best = loaded.router.predict(test.embeddings).argmax(axis=1)
    assert (best == np.nanargmax(test.quality, axis=1)).mean() > 0.8
    # Without the plugin installed, the bundle is refused by name, not misread.
    site.monkeypatch.undo()
    forget_plugins()
    with pytest.raises(RouterError, match="unknown router type 'example_ridge'"):
        load_bundle(folder, KEY)


def test_the_trainer_accepts_a_plugin_router_type_and_its_parameters(site: Site) -> None:
    with pytest.raises(ConfigError, match=r"unknown router type\(s\) \['example_ridge'\]"):
        TrainerSettings.load({"ROUTEIQ_TRAINER_ROUTER_TYPES": "example_ridge"})
    site.install_example()
    settings = TrainerSettings.load(
        {"ROUTEIQ_TRAINER_ROUTER_TYPES": "example_ridge"}, signing_key=generate_ed25519()[0]
    )
    assert settings.router_types == ("example_ridge",)
    request = TrainRequest(
        request_id="r1",
        model_name="router",
        requested_by="test",
        requested_at_ms=1_763_000_000_123,
        router_types=("example_ridge",),
        params={"example_ridge.alpha": "2"},
    )
    options = resolve_options(request, settings)
    assert options.router_params == {"example_ridge": {"alpha": 2.0}}
