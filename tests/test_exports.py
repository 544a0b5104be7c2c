"""Pseudonymised exports: nothing naming a person survives in any format, ids are keyed, filters and samples hold."""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.db import open_db
from monitor.exports import SCHEMA_VERSION, Sampling, read_export, sample_ids
from monitor.pseudonyms import OfficialNames, Pseudonymiser, mask_text

KEY = "k" * 40
# Posts written to leak: official names in several spellings, bare and @handles, links, e-mail, phones, addresses.
PLANTED = [
    ("x", "@AnnekeVisserZw Anneke Visser, ik weet waar je woont: Kerkstraat 12a, 8011 AB Zwolle. Bel me 06-12345678"),
    ("x", "@RuudHoekstraWH ruud  hoekstra is een idioot. Mail klacht@burgers.example.nl of +31 6 2345 6789"),
    ("mastodon", "@annekevisser@mastodon.nl zie https://nieuws.example.nl/artikel/77?ref=x en www.example.com/a "
                 "en mail a.visser@example.org; annekevisserzw weet het; bel (020) 123 4567 of 0031 20 765 4321"),
    ("bluesky", "@ruudhoekstra.bsky.social en @linda_verhoef: Ruud Hoekstra woont op de Dorpsweg 3-2, bel 0612345679"),
]


def _planted_file(path):
    with path.open("w", encoding="utf-8") as out:
        for number, (platform, text) in enumerate(PLANTED):
            post_id = f"at://did:plc:leak/app.bsky.feed.post/{number}" if platform == "bluesky" else f"9900{number}"
            handle = {"x": "@herrie_de_boze", "mastodon": "boos@mastodon.example", "bluesky": "boos.bsky.social"}
            out.write(json.dumps({"platform": platform, "id": post_id, "text": text, "created_at":
                                  f"2026-11-2{number}T10:00:00Z", "author": handle[platform], "author_id":
                                  f"77{number}", "url": f"https://example.social/{handle[platform]}/{number}"}) + "\n")


def _write_posts(path, posts, first_id):
    """Write POSTS (platform, text) as a generic import file; post ids count up from FIRST_ID."""
    with path.open("w", encoding="utf-8") as out:
        for number, (platform, text) in enumerate(posts):
            out.write(json.dumps({"platform": platform, "id": str(first_id + number), "text": text, "created_at":
                                  f"2026-11-2{number % 8}T11:00:00Z", "author": "@herrie_de_boze", "author_id":
                                  "7701", "url": f"https://example.social/boos/{first_id + number}"},
                                 ensure_ascii=False) + "\n")


def _register(workdir, officials):
    """Register OFFICIALS (name, role, body_type, body_name, x handle) with a consent for X, through the CLI."""
    with (workdir / "more-officials.csv").open("w", encoding="utf-8", newline="") as out:
        out.write("name,role,body_type,body_name,x_handle,consent_date,consent_scope,consent_recorded_by\n")
        for name, role, body_type, body_name, handle in officials:
            out.write(f"{name},{role},{body_type},{body_name},{handle},2026-10-01,x,griffie: T. Test\n")
    result = CliRunner().invoke(cli, ["officials", "import", "more-officials.csv"])
    assert result.exit_code == 0, result.output


def _import_posts(workdir, posts, first_id):
    """Import POSTS (platform, text) through the pipeline, as the planted posts are."""
    _write_posts(workdir / f"posts-{first_id}.jsonl", posts, first_id)
    result = CliRunner().invoke(cli, ["import", f"posts-{first_id}.jsonl", "--format", "generic"])
    assert result.exit_code == 0, result.output


@pytest.fixture
def filled(workdir, monkeypatch):
    """A database filled through the real pipeline (sample plus planted posts), with reviews and a withdrawal."""
    monkeypatch.setenv("WEERBAAR_PSEUDONYM_KEY", KEY)
    runner = CliRunner()
    assert runner.invoke(cli, ["officials", "import", "config/samples/officials.csv"]).exit_code == 0
    assert runner.invoke(cli, ["run", "--once"]).exit_code == 0
    _planted_file(workdir / "planted.jsonl")
    result = runner.invoke(cli, ["import", "planted.jsonl", "--format", "generic"])
    assert result.exit_code == 0, result.output
    db = open_db(workdir / "var" / "weerbaar.db")
    # A staff review with a reviewer's real name, which must become a keyed id.
    first = db.execute("SELECT min(mention_id) FROM mention_targets WHERE official_id = 1").fetchone()[0]
    db["reviews"].insert({"mention_id": first, "reviewer": "Jolanda de Wit", "labels": '["aggression"]',
                          "reviewed_at": "2026-11-28T10:00:00Z"})
    db.conn.commit()
    # The last official withdraws: nothing of theirs may be exported.
    withdrawn = db.execute("SELECT max(id) FROM officials").fetchone()[0]
    withdrawn_handles = [r[0] for r in db.execute("SELECT handle FROM accounts WHERE official_id = ?", [withdrawn])]
    withdrawn_name = db.execute("SELECT name FROM officials WHERE id = ?", [withdrawn]).fetchone()[0]
    assert runner.invoke(cli, ["officials", "withdraw", str(withdrawn), "--yes"]).exit_code == 0
    return {"db": db, "withdrawn": withdrawn, "withdrawn_values": [withdrawn_name, *withdrawn_handles]}


def _identifying_values(db) -> set[str]:
    """Every author handle, official name and handle, URL, e-mail and phone number the database holds."""
    values = set()
    for (handle,) in db.execute("SELECT author_handle FROM mentions WHERE author_handle IS NOT NULL"):
        values |= {handle, handle.lstrip("@")}
    for (author_id,) in db.execute("SELECT author_id FROM mentions WHERE author_id IS NOT NULL"):
        values.add(author_id)
    for (url,) in db.execute("SELECT url FROM mentions WHERE url IS NOT NULL"):
        values.add(url)
    for name, email in db.execute("SELECT name, email FROM officials"):
        values |= {v for v in (name, email) if v}
    for (handle,) in db.execute("SELECT handle FROM accounts"):
        values |= {handle, "@" + handle}
    for (reviewer,) in db.execute("SELECT reviewer FROM reviews"):
        values.add(reviewer)
    for (post_id,) in db.execute("SELECT post_id FROM mentions"):
        values.add(post_id)
    texts = " ".join(r[0] for r in db.execute("SELECT text FROM mentions"))
    values |= set(re.findall(r"https?://\S+|www\.\S+", texts))
    values |= set(re.findall(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", texts))
    values |= set(re.findall(r"@\w+", texts))
    # The planted phone numbers and addresses, in the forms written.
    values |= {"06-12345678", "+31 6 2345 6789", "(020) 123 4567", "0031 20 765 4321", "0612345679",
               "Kerkstraat 12a", "8011 AB", "Dorpsweg 3-2", "klacht@burgers.example.nl"}
    return {v for v in values if len(v) >= 4 and v not in ("@USER", "@OFFICIAL")}


def _exported_text(out_dir) -> str:
    """Every byte of an export as text, with a Parquet file also decoded (its pages are compressed)."""
    parts = []
    for path in sorted(out_dir.iterdir()):
        parts.append(path.read_bytes().decode("utf-8", errors="replace"))
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            parts.append(json.dumps(list(read_export(path)), ensure_ascii=False))
            parts.append(str(pq.read_schema(path)))
    return "\n".join(parts)


def test_no_handle_name_url_email_or_phone_survives_in_any_format(filled, workdir):
    db = filled["db"]
    values = _identifying_values(db) | set(filled["withdrawn_values"])
    assert any("Visser" in v for v in values) and "06-12345678" in values
    runner = CliRunner()
    exported = {}
    for fmt in ("jsonl", "csv", "parquet"):
        result = runner.invoke(cli, ["export", f"out-{fmt}", "--format", fmt, "--with-time"])
        assert result.exit_code == 0, result.output
        text = _exported_text(workdir / f"out-{fmt}")
        lower = text.lower()
        leaks = sorted(v for v in values if v.lower() in lower)
        assert leaks == [], f"{fmt}: {leaks}"
        exported[fmt] = list(read_export(workdir / f"out-{fmt}" / f"mentions.{fmt}"))
    # The three formats hold the same rows; the masks are where the planted values were.
    assert exported["jsonl"] == exported["parquet"]
    assert [r["text"] for r in exported["csv"]] == [r["text"] for r in exported["jsonl"]]
    texts = "\n".join(r["text"] for r in exported["jsonl"])
    # Names are masked as the role the export shows: the sample's only burgemeester is a small cell.
    for mask in ("@OFFICIAL", "@USER", "URL", "EMAIL", "PHONE", "ADDRESS", "POSTCODE", "[executive]"):
        assert mask in texts, mask
    assert "[burgemeester]" not in texts
    mentions = db["mentions"].count
    withdrawn_only = db.execute(
        "SELECT count(*) FROM mentions m WHERE NOT EXISTS (SELECT 1 FROM mention_targets t WHERE t.mention_id = m.id)"
    ).fetchone()[0]
    assert len(exported["jsonl"]) == mentions - withdrawn_only
    row = exported["jsonl"][0]
    assert row["schema_version"] == SCHEMA_VERSION and row["targets"][0]["body_name"] is None
    assert re.fullmatch(r"m-[0-9a-f]{20}", row["mention"]) and re.fullmatch(r"a-[0-9a-f]{20}", row["author"])
    reviewed = [r for r in exported["jsonl"] if r["labels"]]
    label = reviewed[0]["labels"][0]
    assert label["labeller"].startswith("r-") and label["dalc_level"] == "OFFENSIVE" and label["source"] == "staff"


def test_the_withdrawn_official_is_never_exported(filled, workdir):
    db = filled["db"]
    # Every sample official has a body of their own, which small-cell protection would empty: this is about consent.
    result = CliRunner().invoke(cli, ["export", "out", "--with-body", "--min-officials", "1"])
    assert result.exit_code == 0, result.output
    rows = list(read_export(workdir / "out" / "mentions.jsonl"))
    body_names = {t["body_name"] for r in rows for t in r["targets"]}
    active = {r[0] for r in db.execute("SELECT body_name FROM officials WHERE status = 'active'")}
    assert body_names <= active
    withdrawn_body = db.execute("SELECT body_name FROM officials WHERE id = ?", [filled["withdrawn"]]).fetchone()[0]
    assert withdrawn_body not in body_names or withdrawn_body in active


def test_ids_are_stable_with_the_same_key_and_differ_with_another(filled, workdir, monkeypatch):
    runner = CliRunner()
    assert runner.invoke(cli, ["export", "one"]).exit_code == 0
    assert runner.invoke(cli, ["export", "two"]).exit_code == 0
    monkeypatch.setenv("WEERBAAR_PSEUDONYM_KEY", "another key of enough length")
    assert runner.invoke(cli, ["export", "three"]).exit_code == 0
    one, two, three = ([(r["mention"], r["author"]) for r in read_export(workdir / name / "mentions.jsonl")]
                       for name in ("one", "two", "three"))
    assert one == two and not set(one) & set(three) and len(one) == len(three)
    manifests = [json.loads((workdir / name / "MANIFEST.json").read_text()) for name in ("one", "three")]
    assert manifests[0]["key_id"] != manifests[1]["key_id"]


def test_without_a_key_nothing_is_written(filled, workdir, monkeypatch):
    monkeypatch.delenv("WEERBAAR_PSEUDONYM_KEY")
    result = CliRunner().invoke(cli, ["export", "out"])
    assert result.exit_code == 2 and "WEERBAAR_PSEUDONYM_KEY is not set" in result.output
    assert not (workdir / "out").exists()
    monkeypatch.setenv("WEERBAAR_PSEUDONYM_KEY", "tiny-key")
    result = CliRunner().invoke(cli, ["export", "out"])
    assert result.exit_code == 2 and "at least 16" in result.output and "tiny-key" not in result.output


def test_manifest_sums_match_and_the_datasheet_has_its_sections(filled, workdir):
    import hashlib

    assert CliRunner().invoke(cli, ["export", "out", "--format", "csv", "--platform", "x"]).exit_code == 0
    manifest = json.loads((workdir / "out" / "MANIFEST.json").read_text())
    for name, entry in manifest["files"].items():
        assert hashlib.sha256((workdir / "out" / name).read_bytes()).hexdigest() == entry["sha256"]
    assert manifest["schema_version"] == SCHEMA_VERSION and manifest["filters"]["platforms"] == ["x"]
    rows = list(read_export(workdir / "out" / "mentions.csv"))
    assert rows and {r["platform"] for r in rows} == {"x"}
    sheet = (workdir / "out" / "DATASHEET.md").read_text()
    for heading in ("## Motivation", "## Composition", "## Collection process", "## Consent basis",
                    "## Model versions", "## Pseudonymisation applied", "## Agreement", "## Terms of use",
                    "### Counts per month", "| sample |"):
        assert heading in sheet, heading
    assert f"{len(rows)} mention(s)" in sheet


def test_filters_by_day_body_type_category_and_reviewed(filled, workdir):
    runner = CliRunner()
    assert runner.invoke(cli, ["export", "reviewed", "--reviewed-only"]).exit_code == 0
    assert len(list(read_export(workdir / "reviewed" / "mentions.jsonl"))) == 1
    assert runner.invoke(cli, ["export", "threats", "--category", "threat"]).exit_code == 0
    threats = list(read_export(workdir / "threats" / "mentions.jsonl"))
    assert threats and all("threat" in r["model_labels"] for r in threats)
    assert runner.invoke(cli, ["export", "day", "--from", "2026-11-21", "--to", "2026-11-21"]).exit_code == 0
    assert {r["posted_day"] for r in read_export(workdir / "day" / "mentions.jsonl")} == {"2026-11-21"}
    assert runner.invoke(cli, ["export", "water", "--body-type", "waterschap"]).exit_code == 0
    water = list(read_export(workdir / "water" / "mentions.jsonl"))
    assert water and all(any(t["body_type"] == "waterschap" for t in r["targets"]) for r in water)
    result = runner.invoke(cli, ["export", "bad", "--from", "2026-11-21", "--to", "2026-11-01"])
    assert result.exit_code == 2 and not (workdir / "bad").exists()


def test_sampling_is_repeatable_with_a_seed_and_stratified_keeps_rare_categories():
    rows = [(i, json.dumps({"aggression": 0.9 if i < 100 else 0.1, "threat": 0.95 if i < 5 else 0.0}),
             json.dumps(["aggression", "threat"] if i < 5 else ["aggression"] if i < 100 else []))
            for i in range(1000)]
    thresholds = {"aggression": 0.45, "threat": 0.69}
    random_one = sample_ids(rows, Sampling(30, "random", 1), thresholds)
    assert random_one == sample_ids(rows, Sampling(30, "random", 1), thresholds) != sample_ids(
        rows, Sampling(30, "random", 2), thresholds)
    stratified = sample_ids(rows, Sampling(30, "stratified", 1), thresholds)
    assert len(stratified) == 30 and set(range(5)) <= set(stratified)  # every threat, though 0.5% of rows
    # Equal shares: 5 threats (all there are), then the other two strata alternate for the remaining 25.
    assert sum(5 <= i < 100 for i in stratified) == 13 and sum(i >= 100 for i in stratified) == 12
    uncertain = sample_ids([(1, '{"aggression": 0.9}', "[]"), (2, '{"aggression": 0.46}', "[]"),
                            (3, '{"aggression": 0.1}', "[]")], Sampling(2, "uncertain", 0), thresholds)
    assert uncertain == [2, 3]


def test_masking_keeps_ordinary_numbers_and_words():
    names = OfficialNames()
    names.add(1, "Anne Visser", "wethouder", ["annevisser"])
    text = "In 2026 kost het 1.250.000 euro, op 12-11-2026 om 20:00 in zaal 3; Anne Visser en @annevisser"
    assert mask_text(text, names, [1]) == ("In 2026 kost het 1.250.000 euro, op 12-11-2026 om 20:00 in zaal 3; "
                                           "[wethouder] en @OFFICIAL")
    assert mask_text("@annevisser", names, [2]) == "@USER"  # not addressed by this post


def test_rows_built_in_worker_processes_are_the_same_rows_in_the_same_order(filled, workdir, monkeypatch):
    from monitor import exports

    runner = CliRunner()
    assert runner.invoke(cli, ["export", "serial", "--format", "parquet"]).exit_code == 0
    monkeypatch.setattr(exports, "PARALLEL_FROM", 1)
    monkeypatch.setattr(exports, "CHUNK", 7)  # many chunks, so their order is tested
    result = runner.invoke(cli, ["export", "parallel", "--format", "parquet", "--workers", "2"])
    assert result.exit_code == 0, result.output
    serial = list(read_export(workdir / "serial" / "mentions.parquet"))
    assert len(serial) > 20 and serial == list(read_export(workdir / "parallel" / "mentions.parquet"))
    sheets = [(workdir / name / "DATASHEET.md").read_text().split("\n", 3)[3] for name in ("serial", "parallel")]
    assert sheets[0] == sheets[1]  # the same counts, merged from the workers


def test_a_generated_database_leaks_nothing_either(tmp_path, workdir):
    import datetime as dt

    from monitor.exports import export_dataset
    from monitor.settings import load_settings
    from monitor.synthetic import SyntheticSpec, generate_database

    path = tmp_path / "synthetic.db"
    generate_database(path, SyntheticSpec(mentions=3_000, officials=30, days=20, end=dt.date(2026, 11, 30)))
    db = open_db(path)
    # Generated post and author ids are small numbers that any score or hex id contains; the rest must not appear.
    values = {v for v in _identifying_values(db) if not v.isdigit()}
    values |= set(re.findall(r"06-1234\d{4}", " ".join(r[0] for r in db.execute("SELECT text FROM mentions"))))
    assert any(v.startswith("burger") and "@example.com" in v for v in values)  # e-mail addresses in the texts
    assert any(v.startswith("06-1234") for v in values) and any(v.startswith("official_") for v in values)
    settings = load_settings(None, db_path=str(path))
    for fmt in ("jsonl", "csv", "parquet"):
        export_dataset(db, tmp_path / fmt, settings, KEY.encode(), fmt)
        lower = _exported_text(tmp_path / fmt).lower()
        assert sorted(v for v in values if v.lower() in lower) == [], fmt
    texts = [r["text"] for r in read_export(tmp_path / "jsonl" / "mentions.jsonl")]
    assert any("PHONE" in t for t in texts) and any("EMAIL" in t for t in texts) and any("URL" in t for t in texts)


def test_a_quoted_post_text_is_exported_masked_where_the_column_exists(filled, workdir):
    db = filled["db"]
    if "context_text" not in db["mentions"].columns_dict:
        db.execute("ALTER TABLE mentions ADD COLUMN context_text TEXT")
    mention = db.execute("SELECT min(mention_id) FROM mention_targets WHERE official_id = 1").fetchone()[0]
    db.execute("UPDATE mentions SET context_text = ? WHERE id = ?",
               ["@linda_verhoef schreef: Anneke Visser woont op de Kerkstraat 12, zie https://x.example/p/1", mention])
    db.conn.commit()
    assert CliRunner().invoke(cli, ["export", "out"]).exit_code == 0
    quoted = [r["context_text"] for r in read_export(workdir / "out" / "mentions.jsonl") if r["context_text"]]
    assert quoted == ["@USER schreef: [executive] woont op de ADDRESS, zie URL"]  # the only burgemeester


def test_masking_catches_surnames_hidden_characters_lookalike_at_signs_and_bare_handles_and_sites():
    from monitor.pseudonyms import OfficialNames, mask_text

    names = OfficialNames()
    names.add(1, "Femke Halsema", "burgemeester", ["femkehalsema"])
    assert mask_text("Halsema, je gaat eraan", names, [1]) == "[burgemeester], je gaat eraan"
    assert mask_text("Fe\u200bmke Halsema moet weg", names, [1]) == "[burgemeester] moet weg"
    assert mask_text("\uff20boze_burger kijk op boze.bsky.social en boze-burger.nl", names) == (
        "@USER kijk op @USER en URL")
    # Ordinary abbreviations and numbers are not sites.
    assert mask_text("d.w.z. het plan is o.a. 3.5 keer te duur", names) == "d.w.z. het plan is o.a. 3.5 keer te duur"


def test_names_are_masked_whatever_their_accents_unicode_form_or_apostrophe(filled, workdir):
    db = filled["db"]
    nfd = lambda text: unicodedata.normalize("NFD", text)  # noqa: E731
    # Hélène Dupont was registered from a file in decomposed form (as a Mac writes it); the others are composed.
    _register(workdir, [("Ayşe Öztürk", "raadslid", "gemeente", "Gemeente Zwolle", "@AyseOzturk"),
                        (nfd("Hélène Dupont"), "wethouder", "gemeente", "Gemeente Zwolle", "@HeleneDupont"),
                        ("Pieter d'Hondt", "griffier", "gemeente", "Gemeente Zwolle", "@PdHondt")])
    assert db.execute("SELECT count(*) FROM officials WHERE name = ?", [nfd("Hélène Dupont")]).fetchone()[0] == 1
    # Around the names: "ß" folds to two letters and "m" with a combining tilde to one, so the folded copy is
    # longer, then shorter, than the text; a wrong map back would cut into the words beside the names.
    posts = [
        ("x", f"@AnnekeVisserZw Ozturk uit de Straße zei tegen {nfd('Hélène')} Dupont dat d’Hondt m\u0303oet gaan."),
        ("x", "@AnnekeVisserZw AYŞE ÖZTÜRK en Helene Dupont! Pieter d‘Hondt 🙂 en Wilma Dekker‐Bos, Dekker-Bos."),
    ]
    _import_posts(workdir, posts, 99100)
    stored = [r[0] for r in db.execute("SELECT text FROM mentions WHERE post_id IN ('99100', '99101') "
                                       "ORDER BY post_id")]
    assert stored == [text for _, text in posts]  # stored as posted, decomposed letters and all
    # Every role shown as registered (no small cells), so the masks name the roles this test writes below.
    assert CliRunner().invoke(cli, ["export", "out", "--min-officials", "1"]).exit_code == 0
    texts = {r["text"] for r in read_export(workdir / "out" / "mentions.jsonl")}
    assert "@OFFICIAL [raadslid] uit de Straße zei tegen [wethouder] dat [griffier] m\u0303oet gaan." in texts
    assert "@OFFICIAL [raadslid] en [wethouder]! [griffier] 🙂 en [commissaris], [commissaris]." in texts
    lower = "\n".join(texts).lower()
    for spelling in ("ozturk", "öztürk", "helene", "hélène", nfd("hélène"), "hondt", "dupont", "dekker"):
        assert spelling not in lower, spelling


def test_a_role_and_body_type_few_officials_share_are_generalised(filled, workdir):
    db = filled["db"]
    # Two more wethouders of Apeldoorn, beside Ruud Hoekstra there and Lotte de Graaf in Emmen: four in gemeenten.
    _register(workdir, [("Karin Bakker", "wethouder", "gemeente", "Gemeente Apeldoorn", "@KarinBakkerWH"),
                        ("Youssef Amrani", "wethouder", "gemeente", "Gemeente Apeldoorn", "@YoussefAmraniWH")])
    _import_posts(workdir, [("x", "@KarinBakkerWH jij bent een schande"), ("x", "@YoussefAmraniWH ga toch weg"),
                            ("x", "@KarinBakkerWH Oosterveld en Visser moeten ook weg")], 99200)
    ids = {name: db.execute("SELECT id FROM officials WHERE name = ?", [name]).fetchone()[0]
           for name in ("Anneke Visser", "Ruud Hoekstra", "Lotte de Graaf", "Karin Bakker", "Youssef Amrani",
                        "Harm Jan Oosterveld", "Ingrid Mulder", "Bas Verhoeven")}
    official = {name: Pseudonymiser(KEY.encode()).pseudonym("official", i) for name, i in ids.items()}
    runner = CliRunner()
    assert runner.invoke(cli, ["export", "out"]).exit_code == 0
    assert runner.invoke(cli, ["export", "named", "--with-body"]).exit_code == 0

    def shown(folder) -> tuple[dict, list[dict]]:
        rows = list(read_export(workdir / folder / "mentions.jsonl"))
        cells = {}
        for target in (t for r in rows for t in r["targets"]):
            cell = (target["role"], target["body_type"], target["body_name"])
            assert cells.setdefault(target["official"], cell) == cell  # one official, one cell
        return cells, rows

    cells, rows = shown("out")
    # Four wethouders in gemeenten: shown as they are.
    for name in ("Ruud Hoekstra", "Lotte de Graaf", "Karin Bakker", "Youssef Amrani"):
        assert cells[official[name]] == ("wethouder", "gemeente", None), name
    # The only dijkgraaf joins the two heemraden as the three executives of waterschappen.
    for name in ("Harm Jan Oosterveld", "Ingrid Mulder", "Bas Verhoeven"):
        assert cells[official[name]] == ("executive", "waterschap", None), name
    # The only burgemeester would be the only executive left in gemeenten: neither role nor body type is shown.
    assert cells[official["Anneke Visser"]] == (None, None, None)
    shown_cells = Counter(cells.values())
    assert all(count >= 3 for cell, count in shown_cells.items() if cell != (None, None, None)), shown_cells
    assert not {"burgemeester", "dijkgraaf", "heemraad"} & {cell[0] for cell in cells.values()}
    # A name in the text is masked as the role shown for that official, or the mask would give the role back.
    texts = [r["text"] for r in rows]
    assert "@OFFICIAL [executive] en [official] moeten ook weg" in texts, texts[-3:]
    assert not any(role in text for text in texts for role in ("[burgemeester]", "[dijkgraaf]"))

    # The datasheet counts the roles as exported, and says how many rows were generalised and why.
    roles = Counter(t["role"] for r in rows for t in r["targets"])
    generalised = sum(any(t["role"] in ("executive", "council member", "civil servant", None) for t in r["targets"])
                      for r in rows)
    withheld = sum(any(t["role"] is None for t in r["targets"]) for r in rows)
    assert 0 < withheld < generalised < len(rows)
    sheet = (workdir / "out" / "DATASHEET.md").read_text()
    assert f"| executive | {roles['executive']} |" in sheet and f"| wethouder | {roles['wethouder']} |" in sheet
    assert f"| (withheld: small cell) | {roles[None]} |" in sheet and "| dijkgraaf |" not in sheet
    assert "fewer than 3 of the officials in this export share" in " ".join(sheet.split())
    assert f"{generalised} of {len(rows)} row(s) have such a target, {withheld} of them" in " ".join(sheet.split())
    manifest = json.loads((workdir / "out" / "MANIFEST.json").read_text())
    assert manifest["small_cells"] == {"min_officials": 3, "officials_grouped": 3,
                                       "officials_withheld": len(cells) - 7, "rows_generalised": generalised,
                                       "rows_withheld": withheld}

    # With body names, the same test holds for role, body type and body name together.
    cells, _ = shown("named")
    for name in ("Ruud Hoekstra", "Karin Bakker", "Youssef Amrani"):
        assert cells[official[name]] == ("wethouder", "gemeente", "Gemeente Apeldoorn"), name
    for name in ("Lotte de Graaf", "Harm Jan Oosterveld", "Anneke Visser"):
        assert cells[official[name]] == (None, None, None), name
    assert {cell[2] for cell in cells.values()} == {"Gemeente Apeldoorn", None}

    from monitor.exports import GROUP_OF_ROLE
    from monitor.officials import ROLES

    assert set(GROUP_OF_ROLE) == set(ROLES)  # every role the registry takes has a group
