"""The `weerbaar score` contract: one output line per input line, same order, same ids."""

import json

from click.testing import CliRunner

from monitor.cli import cli


def test_score_keeps_order_and_ids(workdir):
    texts = ["ik maak je af", "fijne dag", "wat een idioot " * 50, "", "we weten waar je woont", "x"]
    ids = [5, "b", 3.5, "d", None, {"nested": 1}]
    (workdir / "in.jsonl").write_text(
        "\n".join(json.dumps({"id": i, "text": t}) for i, t in zip(ids, texts)) + "\n", encoding="utf-8"
    )
    result = CliRunner().invoke(cli, ["score", "in.jsonl", "-o", "out.jsonl"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (workdir / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["id"] for line in lines] == ids
    assert set(lines[0]) == {"id", "scores", "labels", "flagged", "model"}
    assert lines[0]["labels"] == ["aggression", "threat"] and lines[0]["flagged"] is True
    assert lines[1]["labels"] == [] and lines[1]["flagged"] is False
    assert lines[4]["labels"] == ["aggression", "threat"]
    assert all(line["model"] == "test-keywords@1" for line in lines)
    assert all(0.0 <= p <= 1.0 for line in lines for p in line["scores"].values())


def test_bad_input_names_line_and_field_and_writes_nothing(workdir):
    (workdir / "in.jsonl").write_text(
        '{"id": 1, "text": "goed"}\n{"text": "geen id"}\n{"id": 3}\nnot json\n', encoding="utf-8"
    )
    result = CliRunner().invoke(cli, ["score", "in.jsonl", "-o", "out.jsonl"])
    assert result.exit_code == 2
    assert "in.jsonl:2: field 'id'" in result.output
    assert "in.jsonl:3: field 'text'" in result.output
    assert "in.jsonl:4: not valid JSON" in result.output
    assert not (workdir / "out.jsonl").exists()


def test_score_file_hands_the_classifier_chunks_in_order(workdir):
    from monitor.scoring import score_file
    from tests.fakes.classifiers import KeywordClassifier

    class Recording(KeywordClassifier):
        calls: list[list[str]] = []

        def score(self, texts):
            self.calls.append(list(texts))
            return super().score(texts)

    texts = ["ik maak je af", "fijne dag", "sukkel", "we weten waar je woont", "tot morgen"]
    (workdir / "in.jsonl").write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)),
                                      encoding="utf-8")
    seen = []
    count = score_file(Recording(), workdir / "in.jsonl", workdir / "out.jsonl", {"threat": 0.5}, chunk_size=2,
                       progress=seen.append)
    assert count == 5 and seen == [2, 2, 1]
    assert Recording.calls == [texts[:2], texts[2:4], texts[4:]]
    lines = [json.loads(line) for line in (workdir / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["id"] for line in lines] == list(range(5))
    assert [line["flagged"] for line in lines] == [True, False, False, True, False]
