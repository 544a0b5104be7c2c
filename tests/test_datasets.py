"""Dataset readers: label maps, masking, and errors that name the file, line and column.

The fixtures under tests/fixtures/datasets/ are invented texts written in each dataset's exact file shape (header,
separator, quoting, line endings, label strings); none of the real data is in this repository.
"""

import json
from pathlib import Path

import pytest

from monitor.db import open_db
from monitor.training.datasets import (
    CATEGORIES,
    LABEL_MAP,
    DatasetError,
    LabelledText,
    dataset_part,
    label_balance,
    read_dalc,
    read_dataset,
    read_davidson2017,
    read_ethos,
    read_functional_suite,
    read_gab_hate_corpus,
    read_germeval2018,
    read_germeval2021,
    read_germeval2026_def,
    read_germeval2026_vio,
    read_implicit_hate,
    read_imsypp,
    read_jsonl,
    read_olid,
    read_reviews,
    read_rtp_lx,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "datasets"


def labels(aggression, threat, insult, identity_attack):
    return {"aggression": aggression, "threat": threat, "insult": insult, "identity_attack": identity_attack}


def by_text(records):
    return {record.text: record for record in records}


def test_imsypp_maps_type_and_target_and_cleans_markers():
    records = read_imsypp(FIXTURES / "imsypp.csv")
    texts = by_text(records)
    # The marker-only row is skipped; the marker inside a text becomes a space.
    assert len(records) == 8
    assert "Eerste deel tweede deel" in texts
    assert texts["Mooi weer vandaag in het park"].labels == labels(0, 0, 0, 0)
    assert texts["Wat een kutweer zeg"].labels == labels(0, 0, 0, 0)
    assert texts["Jij bent echt een sukkel wethouder"].labels == labels(1, 0, 1, 0)
    assert texts["Die partij bestaat uit leugenaars. Allemaal."].labels == labels(1, 0, None, 0)
    assert texts["Die nieuwkomers zijn allemaal tuig"].labels == labels(1, 0, 0, 1)
    assert texts["Die krant liegt altijd"].labels == labels(1, 0, None, 0)
    assert texts["Ik kom je halen en dan ben je er geweest"].labels == labels(1, 1, None, 0)
    assert {record.language for record in records} == {"nl"} and records[0].source == "imsypp-nl"


def test_imsypp_offensive_row_without_target_names_line_and_column(tmp_path):
    path = tmp_path / "train.csv"
    # The quoted text spans lines 2-3, so the bad row starts on line 4.
    rows = 'row,doc,type,target\r\n1,"twee\r\nregels",0. appropriate,\r\n2,Jij sukkel,2. offensive,\r\n'
    path.write_text(rows, encoding="utf-8")
    with pytest.raises(DatasetError, match=r"train\.csv: line 4, column 'target': offensive and violent rows need"):
        read_imsypp(path)


def test_imsypp_unknown_type_lists_the_known_ones(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("row,doc,type,target\n1,Hallo,4. other,\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"line 2, column 'type': unknown label '4\. other / '.*0\. appropriate"):
        read_imsypp(path)


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("row,text,type,target\n1,Hallo,0. appropriate,\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"line 1, column 'doc': missing column\(s\) doc"):
        read_imsypp(path)


def test_row_with_too_few_fields_is_named(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("row,doc,type,target\n1,Hallo,0. appropriate,\n2,Hallo\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"line 3, column 'type': expected 4 fields"):
        read_imsypp(path)


def test_dalc_maps_level_and_target():
    texts = by_text(read_dalc(FIXTURES / "dalc.csv"))
    assert texts["Goedemorgen allemaal"].labels == labels(0, 0, 0, 0)
    assert texts["Wat een klotedag, zeg"].labels == labels(0, 0, 0, 0)  # untargeted profanity
    assert texts["@USER jij bent een waardeloze oplichter"].labels == labels(1, None, 1, None)
    assert texts["Die lui van die partij zijn sukkels"].labels == labels(None, None, 0, None)
    assert texts["Dat soort mensen hoort hier niet"].labels == labels(None, None, 0, 1)
    assert texts["Die gemeente is een bananenrepubliek"].labels == labels(None, None, 0, 0)


def test_dalc_bad_level_is_named(tmp_path):
    path = tmp_path / "dalc.csv"
    path.write_text(
        "id,text,abusive,offensive_aggregated,target_aggregated\n1,Hoi,NOT,NOT,\n2,Hoi,YES,NOT,\n", encoding="utf-8"
    )
    with pytest.raises(DatasetError, match=r"line 3, column 'abusive': expected one of EXPLICIT, IMPLICIT, NOT"):
        read_dalc(path)


def test_germeval_keeps_quotes_and_maps_task2():
    records = read_germeval2018(FIXTURES / "germeval2018.txt")
    texts = by_text(records)
    assert texts["@Nutzer Schönen Sonntag euch allen!"].labels == labels(0, 0, 0, 0)
    assert texts['@Nutzer Du bist ein "Experte" für gar nichts, du Clown'].labels == labels(1, None, 1, 0)
    abuse = texts["Diese ganzen Ausländer sind doch alle kriminell immer dasselbe"]  # |LBR| became a space
    assert abuse.labels == labels(None, None, None, 1)
    assert texts["Scheiße, schon wieder Montag"].labels == labels(0, 0, 0, 0)
    assert {record.language for record in records} == {"de"} and records[0].source == "germeval2018"
    assert read_dataset(f"germeval2019:{FIXTURES / 'germeval2018.txt'}")[0].source == "germeval2019"


def test_germeval_missing_tab_names_line(tmp_path):
    path = tmp_path / "germeval.txt"
    path.write_text("Hallo\tOTHER\tOTHER\nNur ein Text ohne Tabs\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"germeval\.txt: line 2, column 'task1': expected 3 tab-separated fields"):
        read_germeval2018(path)


def test_germeval2021_toxic_decides_nothing_and_clean_decides_everything():
    records = read_germeval2021(FIXTURES / "germeval2021.csv")
    assert records[0].labels == labels(0, 0, 0, 0)
    assert records[1].labels == labels(None, None, None, None)


def test_germeval2026_vio_threat_labels_and_masking():
    texts = by_text(read_germeval2026_vio(FIXTURES / "vio.csv"))
    assert texts["Heute war ein ruhiger Tag"].labels == labels(None, 0, None, None)
    assert texts["Wenn ich den erwische, schlage ich zu. Versprochen."].labels == labels(1, 1, None, None)
    assert texts["Geht hin und verprügelt sie alle"].labels == labels(1, 1, None, None)
    assert texts["Gut so, dass es geknallt hat"].labels == labels(None, None, None, None)


def test_germeval2026_def_reads_lower_case_header():
    records = read_germeval2026_def(FIXTURES / "def_trial.csv")
    assert [record.labels for record in records] == [labels(1, None, 1, None), labels(None, None, 0, None)]
    assert records[0].source == "germeval2026-def"


def test_olid_group_offence_is_identity_attack_not_aggression():
    texts = by_text(read_olid(FIXTURES / "olid.tsv"))
    assert texts["@USER Have a lovely weekend"].labels == labels(0, 0, 0, 0)
    assert texts["@USER What a damn mess this is"].labels == labels(0, 0, 0, 0)
    assert texts['@USER You are a "genius", an idiot genius'].labels == labels(1, None, 1, None)
    assert texts["@USER Those people are all vermin"].labels == labels(None, None, 0, 1)
    assert texts["@USER That company is a joke"].labels == labels(None, None, 0, 0)


def test_olid_impossible_combination_is_named(tmp_path):
    path = tmp_path / "olid.tsv"
    path.write_text("id\ttweet\tsubtask_a\tsubtask_b\tsubtask_c\n1\thi\tNOT\tTIN\tIND\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"line 2, column 'subtask_a/b/c': unknown label 'NOT / TIN / IND'"):
        read_olid(path)


def test_davidson_unescapes_html():
    records = read_davidson2017(FIXTURES / "davidson.csv")
    assert records[0].text == "Coffee & rain this morning" and records[0].labels == labels(0, 0, 0, 0)
    assert records[1].labels == labels(None, None, None, 0)
    assert records[2].labels == labels(None, None, None, 1)


def test_gab_call_for_violence_is_threat():
    records = read_gab_hate_corpus(FIXTURES / "ghc.tsv")
    assert [record.labels for record in records] == [
        labels(0, 0, 0, 0),
        labels(1, 1, None, 1),
        labels(None, 0, None, 1),
        labels(None, 0, None, 0),
    ]


def test_gab_non_binary_flag_is_named(tmp_path):
    path = tmp_path / "ghc.tsv"
    path.write_text("text\thd\tcv\tvo\nhello\t0\t2\t0\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"line 2, column 'cv': expected 0 or 1, found '2'"):
        read_gab_hate_corpus(path)


def test_implicit_hate_both_stages():
    stage1 = read_implicit_hate(FIXTURES / "implicit_stg1.tsv")
    assert [record.labels for record in stage1] == [labels(None, None, None, 0), labels(None, None, None, 1)]
    stage2 = read_implicit_hate(FIXTURES / "implicit_stg2.tsv")
    assert [record.labels for record in stage2] == [
        labels(1, 1, None, 1),  # threatening
        labels(None, None, None, 1),  # incitement: may or may not call for violence
        labels(None, 0, None, 1),
    ]
    assert stage2[0].text == "we know where they gather , soon"  # the csv quoting is undone


def test_ethos_both_files_use_the_half_agreement_threshold():
    binary = read_ethos(FIXTURES / "ethos_binary.csv")
    assert [record.labels["identity_attack"] for record in binary] == [0, 1, 0]
    multi = read_ethos(FIXTURES / "ethos_multi.csv")
    assert [record.labels for record in multi] == [
        labels(1, 1, None, 1),
        labels(1, 0, 1, 1),
        labels(None, 0, 0, 1),
    ]


def test_ethos_score_out_of_range_is_named(tmp_path):
    path = tmp_path / "ethos.csv"
    path.write_text("comment;isHate\nhello;1.5\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"line 2, column 'isHate': expected a score between 0 and 1"):
        read_ethos(path)


def test_rtp_lx_thresholds_and_masked_middle():
    records = read_rtp_lx(FIXTURES / "rtp_lx.json")
    assert records[0].labels == labels(0, 0, 0, 0)
    assert records[1].labels == labels(1, 1, 1, 0)
    # Insult 1.67 lies between the thresholds: masked, and so is aggression; identity 2.33 is a positive.
    assert records[2].labels == labels(None, 0, None, 1)
    assert records[0].language == "nl"


def test_rtp_lx_bad_json_names_line(tmp_path):
    path = tmp_path / "rtp.json"
    path.write_text((FIXTURES / "rtp_lx.json").read_text(encoding="utf-8") + "{not json\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"rtp\.json: line 4: not valid JSON"):
        read_rtp_lx(path)


def test_jsonl_dict_masks_what_it_leaves_out_and_list_zeroes_it():
    records = read_jsonl(FIXTURES / "labels.jsonl")
    assert records[0].labels == labels(1, 0, 1, None)
    assert records[1].labels == labels(1, 1, 0, 0)
    assert records[2].labels == labels(0, None, None, None) and records[2].group == "thread-7"
    assert records[0].source == "labels"


@pytest.mark.parametrize(
    "line, pattern",
    [
        ('{"text": "hoi", "labels": {"rudeness": 1}}', r"line 2, column 'labels\.rudeness': unknown category"),
        ('{"text": "hoi", "labels": {"threat": 2}}', r"line 2, column 'labels\.threat': expected 0, 1"),
        ('{"text": "hoi", "labels": ["threat", "spam"]}', r"line 2, column 'labels': unknown category 'spam'"),
        ('{"text": "hoi"}', r"line 2, column 'labels': missing"),
        ('{"labels": []}', r"line 2, column 'text': missing"),
        ("[1, 2]", r"line 2: expected a JSON object"),
    ],
)
def test_jsonl_errors_name_line_and_field(tmp_path, line, pattern):
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "goed", "labels": []}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=pattern):
        read_jsonl(path)


def test_functional_suite_keeps_functionality_as_group(tmp_path):
    suite = read_functional_suite(FIXTURES / "suite.jsonl")
    assert [case.group for case in suite] == ["threat_direct", "threat_direct", "neutral_criticism"]
    assert suite[2].labels == labels(0, 0, 0, 0)
    path = tmp_path / "suite.jsonl"
    path.write_text('{"text": "hoi", "labels": []}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"line 1, column 'functionality': missing"):
        read_functional_suite(path)


def _add_mention(db, mention_id, text, lang="nl"):
    db["mentions"].insert(
        {
            "id": mention_id,
            "platform": "test",
            "post_id": str(mention_id),
            "text": text,
            "lang": lang,
            "created_at": "2026-01-01T00:00:00Z",
            "collected_at": "2026-01-01T00:00:00Z",
            "source": "test",
            "raw_sha256": "0" * 64,
        }
    )
    db["mention_targets"].insert({"mention_id": mention_id, "official_id": 1, "linked_at": "2026-01-01T00:00:00Z"})


def test_reviews_latest_review_wins_and_unlisted_categories_are_zero(tmp_path):
    path = tmp_path / "weerbaar.db"
    db = open_db(path)
    db["officials"].insert(
        {"id": 1, "name": "A", "role": "wethouder", "body_type": "gemeente", "body_name": "X", "created_at": "2026"}
    )
    _add_mention(db, 1, "Jij bent een  clown")
    _add_mention(db, 2, "Wij weten waar je woont")
    _add_mention(db, 3, "Nog niet bekeken")
    review = {"reviewer": "r", "note": None}
    db["reviews"].insert_all(
        [
            {**review, "mention_id": 1, "labels": json.dumps(["aggression", "threat"]), "reviewed_at": "2026-01-02"},
            {**review, "mention_id": 1, "labels": json.dumps(["aggression", "insult"]), "reviewed_at": "2026-01-03"},
            {**review, "mention_id": 2, "labels": json.dumps(["aggression", "threat"]), "reviewed_at": "2026-01-02"},
        ]
    )
    db.close()
    records = read_reviews(path)
    assert [record.text for record in records] == ["Jij bent een clown", "Wij weten waar je woont"]
    assert records[0].labels == labels(1, 0, 1, 0)
    assert records[1].labels == labels(1, 1, 0, 0)
    assert records[0].source == "reviews" and records[0].group == "mention:1"


def test_reviews_unknown_label_names_row_and_column(tmp_path):
    path = tmp_path / "weerbaar.db"
    db = open_db(path)
    db["officials"].insert(
        {"id": 1, "name": "A", "role": "wethouder", "body_type": "gemeente", "body_name": "X", "created_at": "2026"}
    )
    _add_mention(db, 1, "Hallo")
    db["reviews"].insert(
        {"mention_id": 1, "reviewer": "r", "labels": '["spam"]', "note": None, "reviewed_at": "2026-01-02"}
    )
    db.close()
    with pytest.raises(DatasetError, match=r"weerbaar\.db: line reviews row id 1, column 'labels': unknown category"):
        read_reviews(path)


def test_reviews_on_a_file_that_is_no_database(tmp_path):
    path = tmp_path / "not.db"
    path.write_text("hello", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"not\.db: not a Weerbaar database"):
        read_reviews(path)


def test_every_map_keeps_the_category_hierarchy():
    # threat or insult = 1 implies aggression = 1; aggression = 0 implies threat = 0 and insult = 0.
    for dataset, table in LABEL_MAP.items():
        for key, mapped in table.items():
            if not isinstance(mapped, dict):
                continue
            assert set(mapped) == set(CATEGORIES), (dataset, key)
            if mapped["threat"] == 1 or mapped["insult"] == 1:
                assert mapped["aggression"] == 1, (dataset, key)
            if mapped["aggression"] == 0:
                assert mapped["threat"] == 0 and mapped["insult"] == 0, (dataset, key)


def test_read_dataset_spec_errors():
    with pytest.raises(DatasetError, match="expected FORMAT:PATH"):
        read_dataset("imsypp")
    with pytest.raises(DatasetError, match="unknown format 'csv'"):
        read_dataset("csv:/tmp/x.csv")
    with pytest.raises(DatasetError, match="file not found"):
        read_dataset("olid:/nonexistent/olid.tsv")


def test_labelled_text_fills_every_category_and_rejects_bad_labels():
    record = LabelledText("hoi", {"threat": 1}, "test", "nl")
    assert record.labels == labels(None, 1, None, None)
    with pytest.raises(ValueError):
        LabelledText("hoi", {"threat": 2}, "test", "nl")
    with pytest.raises(ValueError):
        LabelledText("hoi", {"spam": 1}, "test", "nl")


def test_label_balance_counts_masked_separately():
    records = read_germeval2021(FIXTURES / "germeval2021.csv")
    assert label_balance(records)["aggression"] == {"positive": 0, "negative": 1, "masked": 1}


def test_threat_templates_reader_gives_the_held_out_suite_only():
    from monitor.training.threat_templates import EVALUATION, FAMILIES

    records = read_dataset("threat-templates:eval")
    eval_families = {f"template:{family.name}" for family in FAMILIES if family.split == EVALUATION}
    assert {record.group for record in records} == eval_families
    assert {record.labels["threat"] for record in records} == {0, 1}
    # A hard negative says nothing about aggression (it may be an insult); a threat is aggression.
    assert all(record.labels["aggression"] == (1 if record.labels["threat"] else None) for record in records)
    assert [r.text for r in read_dataset("threat-templates:eval:1")] != [r.text for r in records]


@pytest.mark.parametrize("spec", ["threat-templates:test", "threat-templates:eval:x"])
def test_threat_templates_reader_refuses_unknown_splits(spec):
    with pytest.raises(DatasetError, match="expected 'eval' or 'train'"):
        read_dataset(spec)


def test_a_part_of_a_dataset_is_disjoint_covering_stable_and_keeps_groups_together():
    whole = read_dataset("threat-templates:eval")
    parts = [read_dataset(f"threat-templates:eval#part={k}/3") for k in (1, 2, 3)]
    assert all(parts) and sum(len(p) for p in parts) == len(whole)
    groups = [{r.group for r in part} for part in parts]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])  # a family stays whole
    assert set().union(*groups) == {r.group for r in whole}
    assert dataset_part(list(reversed(whole)), 1, 3) == list(reversed(parts[0]))  # order does not move a row
    imsypp = read_dataset(f"imsypp:{FIXTURES / 'imsypp.csv'}")
    halves = [read_dataset(f"imsypp:{FIXTURES / 'imsypp.csv'}#part={k}/2") for k in (1, 2)]
    assert sorted(r.text for r in halves[0] + halves[1]) == sorted(r.text for r in imsypp)


@pytest.mark.parametrize("part", ["0/2", "3/2", "1/1"])
def test_a_part_out_of_range_is_refused(part):
    with pytest.raises(DatasetError, match="#part=K/N"):
        read_dataset(f"imsypp:{FIXTURES / 'imsypp.csv'}#part={part}")


def test_the_imsypp_relabels_hold_only_row_ids_and_labels_and_follow_the_guidelines():
    import csv

    from monitor.training.datasets import IMSYPP_RELABELS

    with IMSYPP_RELABELS.open(encoding="utf-8") as lines:
        rows = list(csv.DictReader(lines))
    # Third-party text never enters the repository: ids and our labels only.
    assert set(rows[0]) == {"row", "aggression", "threat", "insult", "identity_attack", "target"}
    assert len(rows) >= 500 and all(row["row"].isdigit() for row in rows)
    for row in rows:
        labels = {c: int(row[c]) for c in ("aggression", "threat", "insult", "identity_attack")}
        assert set(labels.values()) <= {0, 1} and row["target"] in {"official", "person", "group", "none"}
        assert labels["aggression"] or not any(labels.values())
        assert not (row["target"] == "group" and labels["identity_attack"] and labels["insult"])


def test_relabelled_imsypp_takes_our_threat_and_insult_labels_and_keeps_its_aggression(tmp_path):
    from monitor.training.datasets import read_imsypp, read_imsypp_relabelled

    data = tmp_path / "imsypp.csv"
    data.write_text("row,doc,type,target\n7,Ik weet waar je woont,3. violent,12. other\n"
                    "8,Wat een slecht plan,2. offensive,10. politics\n9,Mooi zo,0. appropriate,\n", encoding="utf-8")
    relabels = tmp_path / "relabels.csv"
    relabels.write_text("row,aggression,threat,insult,identity_attack,target\n7,1,1,0,0,person\n"
                        "8,0,0,0,0,none\n", encoding="utf-8")
    theirs = read_imsypp(data)
    ours = read_imsypp_relabelled(data, relabels)
    assert theirs[0].labels["insult"] is None and ours[0].labels == {"aggression": 1, "threat": 1, "insult": 0,
                                                                     "identity_attack": 0}
    # Aggression stays IMSyPP's (the evaluation definition); the other categories follow our labels.
    assert ours[1].labels == {"aggression": 1, "threat": 0, "insult": 0, "identity_attack": 0}
    assert ours[2].labels == theirs[2].labels
