"""The default classifier that ships in models/: what config/weerbaar.toml names, loaded and used as a user would.

How well each model scores is its own test file's business (tests/test_classifier.py for the e5 head)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.classifier import load_classifier, model_label
from monitor.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "config" / "weerbaar.toml"

THREATS = [
    "Ik weet waar je woont wethouder, ik kom je vannacht halen",
    "Als dat azc er komt steek ik je huis in de fik",
    "Ik maak je af vuile landverrader",
]
KIND = [
    "Dank je wel voor je inzet voor het dorp, wethouder",
    "De raadsvergadering begint vanavond om half acht",
    "Fijn dat u langskwam op de braderie",
]
INSULTS = ["Wat ben jij een ongelofelijke klootzak", "Die burgemeester is een waardeloze leugenaar en een sukkel"]
# Ninety-odd harmless words: longer than the model reads at once (128 pieces).
LONG_HARMLESS = (
    "Beste wethouder, ik woon al twintig jaar met veel plezier in deze wijk en heb altijd graag de buurtbarbecue "
    "georganiseerd, de speeltuin helpen opknappen en de buren geholpen met hun tuinen. De gemeente heeft ons altijd "
    "goed geholpen met vergunningen en ik waardeer het werk van de ambtenaren enorm. Wel wil ik iets kwijt over het "
    "nieuwe parkeerbeleid, de bomen in onze straat, de verlichting bij de basisschool en de afvalinzameling, die de "
    "laatste maanden steeds later op de dag komt. Misschien kunnen we daar eens rustig over praten op het "
    "spreekuur in het wijkcentrum, want ik denk dat veel bewoners er graag over meedenken."
)


@pytest.fixture(scope="module")
def settings():
    return load_settings(CONFIG)


@pytest.fixture(scope="module")
def classifier(settings):
    return load_classifier(settings)


def card(settings) -> dict:
    return json.loads((settings.resolve(settings.classifier.model_path) / "model.json").read_text(encoding="utf-8"))


def test_the_default_model_is_committed_and_named_by_its_card(settings, classifier):
    assert model_label(classifier) == f"{card(settings)['name']}@{card(settings)['version']}"
    assert set(card(settings)["categories"]) >= {"aggression", "threat"}
    assert set(settings.classifier.thresholds) >= {"aggression", "threat"}
    assert (settings.resolve(settings.classifier.model_path) / "MODEL_CARD.md").is_file()


def test_the_configured_thresholds_are_the_models_own(settings):
    # config/weerbaar.toml and the settings defaults carry the thresholds the export chose on held-out rows, to 2 places.
    from monitor.settings import ClassifierSettings

    chosen = card(settings)["thresholds"]
    for thresholds in (settings.classifier.thresholds, ClassifierSettings().thresholds):
        for category, value in thresholds.items():
            assert abs(value - chosen[category]) <= 0.005, category
    assert ClassifierSettings().model_path == Path(settings.classifier.model_path)


def test_the_model_artifacts_committed_in_models_fit_25_mb():
    # Every scorer artifact together (models/corpus/ is training data, not a scorer, and ships apart from them).
    artifacts = [path for path in (REPO / "models").rglob("*")
                 if path.is_file() and "corpus" not in path.relative_to(REPO / "models").parts]
    assert any(path.name == "model.onnx" for path in artifacts)
    assert sum(path.stat().st_size for path in artifacts) <= 25 * 1000 * 1000


def test_scores_are_probabilities_in_input_order(classifier):
    texts = THREATS + KIND + INSULTS
    forward = classifier.score(texts)
    backward = classifier.score(texts[::-1])[::-1]
    assert len(forward) == len(texts)
    for row, again in zip(forward, backward):
        assert set(row) == set(classifier.categories)
        assert all(0.0 <= value <= 1.0 for value in row.values())
        # Scores are evidence: a text's score must not depend on what else is in its batch.
        assert all(abs(row[c] - again[c]) <= 1e-4 for c in row)


def test_a_texts_score_is_the_same_alone_and_in_any_batch(classifier):
    texts = THREATS + KIND + INSULTS + [LONG_HARMLESS, "ok", "Wat een mooie dag voor de opening van de brug " * 6]
    together = classifier.score(texts)
    for index, text in enumerate(texts):
        alone = classifier.score([text])[0]
        assert max(abs(alone[c] - together[index][c]) for c in alone) <= 1e-4, text


def test_a_threat_after_ninety_harmless_words_is_read(classifier):
    # Cut at 128 pieces, the threat was never read and the text scored like the harmless part alone.
    [harmless, with_threat] = classifier.score([LONG_HARMLESS, LONG_HARMLESS + " Ik maak je af, we weten waar je woont."])
    assert with_threat["threat"] >= 4 * harmless["threat"]
    assert with_threat["threat"] - harmless["threat"] >= 0.25


@pytest.mark.parametrize("hidden", ["i k  m a a k  j e  a f", "ik m44k j3 @f", "w3 w3t3n w44r j3 w00nt"])
def test_threats_in_hidden_spelling_score_like_the_plain_threat(classifier, hidden):
    plain, obfuscated = classifier.score(["ik maak je af" if "w" not in hidden[:2] else "we weten waar je woont",
                                          hidden])
    assert obfuscated["threat"] >= plain["threat"] - 0.15


def test_weerbaar_score_uses_the_default_model(tmp_path, settings):
    source = tmp_path / "posts.jsonl"
    source.write_text(
        "".join(json.dumps({"id": f"p{i}", "text": text}) + "\n" for i, text in enumerate(THREATS + KIND)),
        encoding="utf-8",
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WEERBAAR_")}
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "score", str(source), "-o", str(tmp_path / "scores.jsonl")],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["id"] for line in lines] == [f"p{i}" for i in range(len(THREATS + KIND))]
    assert {line["model"] for line in lines} == {f"{card(settings)['name']}@{card(settings)['version']}"}
    threat = [line["scores"]["threat"] for line in lines]
    assert min(threat[: len(THREATS)]) > max(threat[len(THREATS):])
    assert all("threat" in line["labels"] for line in lines[: len(THREATS)])


def test_scoring_with_the_default_imports_neither_torch_nor_transformers():
    code = (
        "import sys\n"
        "from monitor.classifier import load_classifier\n"
        "from monitor.settings import load_settings\n"
        "load_classifier(load_settings('config/weerbaar.toml')).score(['Ik weet waar je woont'])\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_runtime_never_imports_the_training_package(tmp_path):
    # The demo runs the run and digest paths on the bundled sample with the default model; score and the modules
    # behind serve and rescore follow. None of it may need monitor.training (nor torch, transformers or sklearn).
    (tmp_path / "posts.jsonl").write_text(json.dumps({"id": "1", "text": THREATS[0]}) + "\n", encoding="utf-8")
    code = (
        "import sys\n"
        "import monitor.scheduler, monitor.rescoring, monitor.watchdog, monitor.retention\n"
        "from monitor.cli import cli\n"
        "for arguments in (['demo'], ['score', 'posts.jsonl', '-o', 'scores.jsonl']):\n"
        "    cli(arguments, standalone_mode=False)\n"
        "print(sorted(m for m in sys.modules if m.partition('.')[0] in ('torch', 'transformers', 'sklearn')\n"
        "             or m == 'monitor.training' or m.startswith('monitor.training.')))\n"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WEERBAAR_")}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=environment, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "scores.jsonl").read_text(encoding="utf-8").count("\n") == 1
    assert list((tmp_path / "var" / "digests").glob("digest-*.html"))
    assert result.stdout.strip().splitlines()[-1] == "[]"
