"""The team's corpus: every family file checks out, the splits are kept apart, and agreement is computed right."""

import json

import pytest

from monitor.training.corpus import (
    HARD_NEGATIVE_PHENOMENA,
    PHENOMENA,
    agreement,
    corpus_files,
    phenomenon_report,
    read_corpus,
    read_family,
    split_overlaps,
)
from monitor.agreement import cohen_kappa
from monitor.training.datasets import DatasetError, dataset_part, read_dataset


@pytest.fixture(scope="module")
def train():
    return read_corpus("train")


@pytest.fixture(scope="module")
def evaluation():
    return read_corpus("eval")


def test_the_bundled_corpus_is_large_varied_and_has_enough_hard_negatives(train, evaluation):
    messages = train + evaluation
    assert len(messages) >= 8_000
    assert sum(m.labels["aggression"] == 0 for m in messages) / len(messages) >= 0.40
    assert sum(m.phenomenon in HARD_NEGATIVE_PHENOMENA for m in messages) / len(messages) >= 0.40
    assert {m.phenomenon for m in train} == {m.phenomenon for m in evaluation} == set(PHENOMENA)
    assert len({m.register for m in messages}) == 8 and len({m.topic for m in messages}) >= 15
    assert sum(m.labels["threat"] for m in messages) >= 1_000


def test_every_family_is_in_one_split_and_evaluation_writers_wrote_no_training_family(train, evaluation):
    overlaps = split_overlaps(train, evaluation)
    assert overlaps == {"families": [], "writers": [], "texts": []}
    # A family is one phenomenon by one writer: one file each.
    assert len({m.family for m in train}) == len(corpus_files("train"))


def test_a_split_by_part_keeps_each_family_whole():
    records = read_dataset("corpus:train")
    parts = [dataset_part(records, k, 5) for k in range(1, 6)]
    assert sum(len(p) for p in parts) == len(records)
    families = [{r.group for r in part} for part in parts]
    assert all(not (a & b) for i, a in enumerate(families) for b in families[i + 1:])
    assert {r.source for r in records} == {"weerbaar-corpus"}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"id": "w9-threat_direct-0001", "text": "x", "aggression": 0, "threat": 1, "insult": 0, '
         '"identity_attack": 0, "target": "official", "register": "street", "topic": "other"}',
         "line 2: field 'aggression': 0, but threat"),
        ('{"id": "w9-threat_direct-0001", "text": "x", "aggression": 1, "threat": 2, "insult": 0, '
         '"identity_attack": 0, "target": "official", "register": "street", "topic": "other"}',
         "line 2: field 'threat': expected 0 or 1"),
        ('{"id": "w8-threat_direct-0001", "text": "x", "aggression": 1, "threat": 1, "insult": 0, '
         '"identity_attack": 0, "target": "official", "register": "street", "topic": "other"}', "field 'id'"),
        ('{"id": "w9-threat_direct-0002", "text": "x", "aggression": 1, "threat": 1, "insult": 0, '
         '"identity_attack": 0, "target": "mayor", "register": "street", "topic": "other"}', "field 'target'"),
        ('{"id": "w9-threat_direct-0002", "text": "x"', "line 2: not JSON"),
    ],
)
def test_a_bad_line_is_named_by_file_line_and_field(tmp_path, line, problem):
    good = ('{"id": "w9-threat_direct-0001", "text": "ik maak je af", "aggression": 1, "threat": 1, "insult": 0, '
            '"identity_attack": 0, "target": "official", "register": "street", "topic": "other"}')
    path = tmp_path / "train" / "w9-threat_direct.jsonl"
    path.parent.mkdir()
    path.write_text(good + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=problem) as error:
        read_family(path)
    assert str(path) in str(error.value)


def test_cohen_kappa_matches_a_worked_example():
    # 50 items: both yes 20, both no 15, first yes only 5, second yes only 10 -> p_o 0.7, p_e 0.5, kappa 0.4.
    first = [1] * 20 + [0] * 15 + [1] * 5 + [0] * 10
    second = [1] * 20 + [0] * 15 + [0] * 5 + [1] * 10
    assert cohen_kappa(first, second) == pytest.approx(0.4)
    assert cohen_kappa([1, 0, 1], [1, 0, 1]) == 1.0


def test_agreement_reports_kappa_per_category_and_the_disagreements():
    base = {"aggression": 1, "threat": 1, "insult": 0, "identity_attack": 0, "target": "official"}
    first = {"a": base, "b": base | {"threat": 0}, "c": base | {"aggression": 0, "threat": 0, "target": "none"}}
    second = {"a": base, "b": base, "c": base | {"aggression": 0, "threat": 0, "target": "none"}, "x": base}
    report = agreement(first, second)
    assert report["items"] == 3 and report["disagreements"]["threat"] == ["b"]
    assert report["kappa"]["aggression"] == 1.0 and report["kappa"]["identity_attack"] == 1.0
    assert report["agreement"]["threat"] == pytest.approx(0.667, abs=1e-3)


def test_phenomenon_report_counts_recall_on_positives_and_false_alarms_on_hard_negatives(evaluation):
    threats = [m for m in evaluation if m.phenomenon == "threat_direct"][:4]
    negatives = [m for m in evaluation if m.phenomenon == "figurative_violence" and not m.labels["aggression"]][:4]
    scores = [{"threat": 0.9, "aggression": 0.9}] * 3 + [{"threat": 0.1, "aggression": 0.9}] + \
             [{"threat": 0.7, "aggression": 0.2}] + [{"threat": 0.1, "aggression": 0.1}] * 3
    report = phenomenon_report(threats + negatives, scores, {"threat": 0.5, "aggression": 0.5})
    assert report["threat_direct"]["threat_recall"] == 0.75 and report["threat_direct"]["aggression_recall"] == 1.0
    assert report["figurative_violence"] == {"messages": 4, "aggression_false_alarms": 0.0,
                                             "threat_false_alarms": 0.25, "negatives": 4}


def test_corpus_files_have_no_fields_beyond_the_documented_ones():
    for path in corpus_files("train") + corpus_files("eval"):
        for line in path.read_text(encoding="utf-8").splitlines():
            assert set(json.loads(line)) == {"id", "text", "aggression", "threat", "insult", "identity_attack",
                                             "target", "register", "topic"}, path


def test_the_second_pass_covers_at_least_1000_messages_and_its_agreement_is_reported():
    from monitor.training.corpus import second_pass_agreement

    reports = second_pass_agreement()
    # labeller2: the whole first evaluation split; labeller3: the families added in the second writing round.
    assert set(reports) == {"labeller2", "labeller3"}
    assert reports["labeller2"]["items"] >= 1_000 and reports["labeller3"]["items"] == 150
    for report in reports.values():
        assert set(report["kappa"]) == {"aggression", "threat", "insult", "identity_attack"}
        assert all(-1.0 <= kappa <= 1.0 for kappa in report["kappa"].values())


def test_every_held_out_phenomenon_is_reported_when_a_classifier_is_scored_on_it():
    from monitor.training.corpus import evaluate_phenomena
    from tests.fakes.classifiers import KeywordClassifier

    report = evaluate_phenomena(KeywordClassifier(), {"aggression": 0.5, "threat": 0.5}, "eval")
    assert set(report) == set(PHENOMENA)
    # The keyword stand-in flags "maak je af": some direct threats, never a neutral mention.
    assert report["threat_direct"]["threat_recall"] > 0 and report["neutral_mention"]["threat_false_alarms"] == 0
