"""The e5-head classifier (the first default): the committed artifact, its loader, and the training helpers behind it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from monitor.classifier import CATEGORIES, load_classifier, model_label
from monitor.e5_head import E5HeadClassifier, ModelArtifactError, embed_in_length_order, load_e5_head, read_e5_head
from monitor.settings import ClassifierSettings, Settings
from monitor.training.datasets import DatasetError, LabelledText, read_imsypp
from monitor.training.evaluation import alarm_rates, category_report
from monitor.training.heads import (
    MASKED,
    EmbeddingCache,
    LabelledTexts,
    fit_logistic_head,
    fit_mlp_head,
    records_as_labelled,
    train_and_evaluate,
    write_artifact,
)
from monitor.training.threat_templates import FAMILIES, generate_templates

MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "weerbaar-e5-head"

# Written for this test, not taken from the templates the model was trained on.
THREATS = [
    "Ik weet waar je woont, ik kom je vannacht halen",
    "Jouw kinderen lopen elke ochtend langs het kanaal, wees maar bang",
    "Nog één stem voor dat plan en je komt het gemeentehuis niet meer levend uit",
    "Ik heb een mes en ik weet wanneer je vergadering afloopt",
    "Morgen gooi ik een brandbom door je brievenbus",
    "Jij en je gezin gaan hiervoor boeten, ik zweer het",
]
INSULTS = [
    "Wat ben jij een ongelooflijke idioot zeg",
    "Vuile leugenaar, je bent een schande voor dit dorp",
    "Achterlijke sukkel, ga toch weg",
    "Jij bent echt de domste kut die ooit in de raad heeft gezeten",
    "Smerige oplichter, walgelijk mens ben je",
]
KIND = [
    "Bedankt voor de fijne informatieavond over de nieuwe speeltuin",
    "Mooi initiatief van de gemeente, zo wordt het buurthuis weer levendig",
    "Wat goed dat de fietspaden eindelijk worden opgeknapt",
    "De wethouder beantwoordde al onze vragen heel geduldig, top",
    "Morgen is de markt verplaatst naar het plein bij de kerk",
    "Gefeliciteerd met je benoeming, veel succes de komende jaren",
]


@pytest.fixture(scope="module")
def classifier() -> E5HeadClassifier:
    return load_e5_head(ClassifierSettings(model="e5-head", model_path=MODEL_DIR), Settings())


def mean_probability(classifier: E5HeadClassifier, texts: list[str], category: str) -> float:
    return float(np.mean([scores[category] for scores in classifier.score(texts)]))


def test_scores_are_probabilities_for_every_category(classifier):
    scores = classifier.score(THREATS[:2] + KIND[:2])
    assert len(scores) == 4
    for text_scores in scores:
        assert set(text_scores) == set(CATEGORIES)
        assert all(0.0 <= p <= 1.0 for p in text_scores.values())


def test_order_is_preserved_across_batches_of_mixed_length(classifier, monkeypatch):
    texts = [KIND[0] * 4, "ok", THREATS[0], "?", INSULTS[1] + " " + KIND[2], KIND[4]]
    one_by_one = [classifier.score([text])[0] for text in texts]
    monkeypatch.setattr(classifier, "batch_size", 2)
    batched = classifier.score(texts)
    for alone, together in zip(one_by_one, batched):
        for category in CATEGORIES:
            assert together[category] == pytest.approx(alone[category], abs=0.02)


def test_clear_threats_score_higher_on_threat_than_kind_texts(classifier):
    assert mean_probability(classifier, THREATS, "threat") > mean_probability(classifier, KIND, "threat") + 0.2


def test_insults_score_higher_on_aggression_than_kind_texts(classifier):
    assert mean_probability(classifier, INSULTS, "aggression") > mean_probability(classifier, KIND, "aggression") + 0.3


def test_empty_input_gives_empty_output(classifier):
    assert classifier.score([]) == []


def test_committed_artifact_names_its_version():
    card = json.loads((MODEL_DIR / "model.json").read_text(encoding="utf-8"))
    classifier = load_classifier(Settings(classifier=ClassifierSettings(model="e5-head", model_path=MODEL_DIR)))
    assert model_label(classifier) == f"weerbaar-e5-head@{card['version']}"
    assert classifier.categories == tuple(card["categories"]) == CATEGORIES


def test_missing_artifact_gives_an_error_naming_the_path(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelArtifactError, match=str(missing)):
        load_e5_head(ClassifierSettings(model_path=missing), Settings())


def test_artifact_missing_its_head_file_names_that_file(tmp_path):
    (tmp_path / "model.json").write_text('{"version": "x", "categories": ["aggression"]}', encoding="utf-8")
    with pytest.raises(ModelArtifactError, match="head.npz"):
        read_e5_head(tmp_path)


class FakeEmbedder:
    """Embeds a text as a fixed random unit vector seeded by the text, and counts what it was asked."""

    def __init__(self, dim: int = 8):
        self.dim = dim
        self.embedded: list[str] = []

    def vector(self, text: str) -> np.ndarray:
        rng = np.random.default_rng(sum(map(ord, text)) + len(text))
        vector = rng.normal(size=self.dim)
        return (vector / np.linalg.norm(vector)).astype(np.float32)

    def query(self, texts: list[str]) -> np.ndarray:
        self.embedded.extend(texts)
        return np.stack([self.vector(text) for text in texts])


def test_embedding_in_length_order_restores_input_order():
    embedder = FakeEmbedder()
    texts = ["a much longer text than the others", "b", "medium text", "", "cc"]
    vectors = embed_in_length_order(embedder.query, texts, batch_size=2)
    assert np.allclose(vectors, np.stack([embedder.vector(text) for text in texts]))


def test_embedding_cache_embeds_each_text_once(tmp_path):
    embedder = FakeEmbedder()
    first = EmbeddingCache(tmp_path, embedder.query, key="fake")(["een", "twee", "een"])
    again = EmbeddingCache(tmp_path, embedder.query, key="fake")(["twee", "een", "drie"])
    assert sorted(embedder.embedded) == ["drie", "een", "twee"]
    assert np.allclose(first[1], again[0]) and np.allclose(first[0], again[1])


def test_imsypp_records_become_head_rows_stratified_by_type(tmp_path):
    csv_path = tmp_path / "imsypp.csv"
    csv_path.write_text(
        "row,doc,type,target\n"
        "0,gewoon een bericht,0. appropriate,\n"
        '1,"-*-*-*- wat een sukkel -*-*-*-",2. offensive,11. individual\n'
        "2,ik kom je halen,3. violent,10. politics\n"
        "3,,0. appropriate,\n",
        encoding="utf-8",
    )
    rows = records_as_labelled(read_imsypp(csv_path), "imsypp")
    assert rows.texts == ["gewoon een bericht", "wat een sukkel", "ik kom je halen"]
    assert rows.labels["aggression"].tolist() == [0, 1, 1]
    assert rows.labels["threat"].tolist() == [0, 0, 1]
    assert rows.strata == ["0. appropriate", "2. offensive", "3. violent"]
    assert rows.groups == ["imsypp:0", "imsypp:1", "imsypp:2"]


def test_read_imsypp_names_the_file_when_a_column_is_missing(tmp_path):
    csv_path = tmp_path / "wrong.csv"
    csv_path.write_text("row,text\n0,hallo\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="wrong.csv"):
        read_imsypp(csv_path)


def test_a_trained_head_round_trips_through_the_artifact(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 20)
    vectors = rng.normal(size=(40, 8)) + labels[:, None] * 1.5
    heads = {category: fit_logistic_head(vectors, labels, c_grid=(0.1, 1.0)) for category in CATEGORIES}
    assert category_report(labels, heads["threat"].predict(vectors))["macro_f1"] > 0.8

    write_artifact(tmp_path, heads, {"version": "test.1", "categories": list(CATEGORIES), "prefix": "query"})
    loaded = read_e5_head(tmp_path)
    assert loaded.version == "test.1"
    embedder = FakeEmbedder()
    loaded._embedder = embedder
    texts = ["een", "twee drie", "vier"]
    scores = loaded.score(texts)
    expected = heads["aggression"].predict(np.stack([embedder.vector(text) for text in texts]))
    assert [s["aggression"] for s in scores] == pytest.approx(expected.tolist(), abs=1e-5)


def test_a_hidden_layer_head_round_trips_through_the_artifact_next_to_a_logistic_one(tmp_path):
    rng = np.random.default_rng(1)
    labels = np.array([0, 1] * 30)
    # XOR-like classes: a logistic head cannot separate them, one hidden layer can.
    signs = rng.choice([-1.0, 1.0], size=60)
    vectors = rng.normal(scale=0.3, size=(60, 8))
    vectors[:, 0] += signs
    vectors[:, 1] += signs * np.where(labels == 1, 1.0, -1.0)
    heads = {
        "aggression": fit_mlp_head(vectors, labels, alpha_grid=(0.01,), hidden=8),
        "threat": fit_logistic_head(vectors, labels, c_grid=(1.0,)),
    }
    assert category_report(labels, heads["aggression"].predict(vectors))["macro_f1"] > 0.9

    write_artifact(tmp_path, heads, {"version": "test.2", "categories": list(CATEGORIES), "prefix": "query"})
    loaded = read_e5_head(tmp_path)
    embedder = FakeEmbedder()
    loaded._embedder = embedder
    texts = ["een", "twee drie", "vier", "vijf zes zeven"]
    embedded = np.stack([embedder.vector(text) for text in texts])
    scores = loaded.score(texts)
    for category in CATEGORIES:
        expected = heads[category].predict(embedded)
        assert [s[category] for s in scores] == pytest.approx(expected.tolist(), abs=1e-5)


def test_masked_labels_are_left_out_of_the_extra_aggression_data():
    records = [
        LabelledText("duidelijk een belediging", {"aggression": 1}, "rtp-lx-nl", "nl"),
        LabelledText("twijfelgeval", {"aggression": None}, "rtp-lx-nl", "nl"),
        LabelledText("een vriendelijk bericht", {"aggression": 0}, "rtp-lx-nl", "nl"),
    ]
    data = records_as_labelled(records, "rtp-lx-nl")
    assert data.labels["aggression"].tolist() == [1, MASKED, 0]
    assert data.labels["threat"].tolist() == [MASKED] * 3


def test_extra_aggression_data_trains_only_and_never_joins_the_evaluation(tmp_path):
    types = ["0. appropriate"] * 16 + ["2. offensive"] * 12 + ["3. violent"] * 12
    csv_path = tmp_path / "imsypp.csv"
    csv_path.write_text(
        "row,doc,type,target\n" + "".join(f"{i},bericht nummer {i},{t},11. individual\n" for i, t in enumerate(types)),
        encoding="utf-8",
    )
    extra = LabelledTexts(
        texts=["extra een", "extra twee", "extra drie", "extra vier"],
        labels={"aggression": np.array([1, 0, MASKED, 1], dtype=np.int8), "threat": np.full(4, MASKED, np.int8)},
        groups=["x:1", "x:2", "x:3", "x:4"],
        source="extra",
    )
    embedder = FakeEmbedder()
    run = train_and_evaluate(
        records_as_labelled(read_imsypp(csv_path), "imsypp"),
        generate_templates(per_family=3),
        [],
        embed=embedder.query,
        folds=2,
        c_grid=(1.0,),
        extra_aggression=[(extra, 0.3)],
        head_kind={"aggression": "mlp"},
        hidden=4,
        threat_threshold_from_templates=True,
    )
    assert run.report["training_rows"]["extra (aggression)"] == 3
    assert [f["aggression"]["rows"] for f in run.report["folds"]] == [20, 20]
    assert run.report["head_kind"]["aggression"] == "mlp"
    assert "train_templates_out_of_family" in run.report["threat_by_threshold"]["0.5"]


def test_train_and_evaluate_reports_cross_validated_metrics(tmp_path):
    types = ["0. appropriate"] * 16 + ["2. offensive"] * 12 + ["3. violent"] * 12
    csv_path = tmp_path / "imsypp.csv"
    csv_path.write_text(
        "row,doc,type,target\n" + "".join(f"{i},bericht nummer {i},{t},11. individual\n" for i, t in enumerate(types)),
        encoding="utf-8",
    )
    embedder = FakeEmbedder()
    run = train_and_evaluate(
        records_as_labelled(read_imsypp(csv_path), "imsypp"), generate_templates(per_family=3), [],
        embed=embedder.query, folds=2, c_grid=(1.0,),
    )
    assert set(run.heads) == set(CATEGORIES)
    assert len(run.report["aggression_cv"]["macro_f1_per_fold"]) == 2
    assert run.report["threat_eval_templates"]["positives"] > 0
    assert set(run.report["recommended_thresholds"]) == set(CATEGORIES)
    evaluation_texts = {t.text for t in generate_templates(per_family=3, split="eval")}
    training_rows = run.report["training_rows"]
    assert training_rows["templates_eval"] == len(evaluation_texts)


def test_alarm_rates_count_recall_and_false_alarms():
    rates = alarm_rates(np.array([1, 1, 0, 0, 0, 0]), np.array([0.9, 0.2, 0.7, 0.1, 0.1, 0.1]), 0.5)
    assert rates["recall"] == 0.5 and rates["false_alarm_rate"] == 0.25


def test_templates_are_deterministic_and_each_family_is_in_one_split():
    assert generate_templates(seed=3, per_family=5) == generate_templates(seed=3, per_family=5)
    assert generate_templates(seed=3, per_family=5) != generate_templates(seed=4, per_family=5)
    splits = {family.name: family.split for family in FAMILIES}
    assert set(splits.values()) == {"train", "eval"}
    for split in ("train", "eval"):
        labels = {text.threat for text in generate_templates(per_family=5, split=split)}
        assert labels == {True, False}, f"the {split} split needs threats and hard negatives"
    for text in generate_templates(per_family=5):
        assert splits[text.family] == text.split
