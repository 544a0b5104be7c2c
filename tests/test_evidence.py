"""Evidence packs for a police report: the zip's files and hashes, and the PDF's text holds what the pack promises."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import zipfile

import pytest
from click.testing import CliRunner
from pypdf import PdfReader

from monitor.cli import cli
from monitor.db import open_db
from monitor.evidence import build_evidence_pack, printable
from monitor.reviews import record_review
from monitor.users import find_user
from tests.desk import POSTS, build_desk, cheap_password_hashing  # noqa: F401


@pytest.fixture
def desk(workdir):
    return build_desk(workdir)


def verify_sums(archive: zipfile.ZipFile) -> dict[str, bytes]:
    """Check SHA256SUMS against every other file, as `sha256sum -c` would; return the files."""
    files = {name: archive.read(name) for name in archive.namelist()}
    listed = {}
    for line in files["SHA256SUMS"].decode("ascii").splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    assert set(listed) == set(files) - {"SHA256SUMS"}
    for name, digest in listed.items():
        assert hashlib.sha256(files[name]).hexdigest() == digest, name
    return files


def pdf_text(data: bytes) -> str:
    """Return the PDF's text as pypdf reads it, checked against poppler's pdftotext where that is installed."""
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    if shutil.which("pdftotext"):
        poppler = subprocess.run(["pdftotext", "-", "-"], input=data, capture_output=True, check=True).stdout.decode()
        assert " ".join(poppler.split()) == " ".join(text.split())
    return text


def test_the_cli_writes_a_pack_whose_pdf_and_json_hold_the_whole_record(desk):
    threat, both = desk.mentions["threat_anneke"], desk.mentions["both"]
    db = open_db(desk.db_path)
    anna = find_user(db, "anna")
    record_review(db, anna, threat, ["threat", "aggression"], note="Adres genoemd; politie gebeld")
    record_review(db, anna, threat, ["threat", "aggression"], status="reported", reported_on="2026-11-30")
    raw_sha = db.execute("SELECT raw_sha256 FROM mentions WHERE id = ?", [threat]).fetchone()[0]
    db.close()
    result = CliRunner().invoke(cli, ["evidence", str(threat), str(both), "-o", "out/pack.zip", "--by", "griffie: J. de Wit"])
    assert result.exit_code == 0, result.output
    archive = zipfile.ZipFile("out/pack.zip")
    files = verify_sums(archive)
    assert sorted(files) == ["SHA256SUMS", "aangifte-weerbaar.pdf", "record.json"]
    record = json.loads(files["record.json"])
    assert record["pack"]["made_by"] == "griffie: J. de Wit"
    first = record["mentions"][0]
    assert first["text"] == POSTS["threat_anneke"]["text"]  # exactly as collected
    assert first["raw_sha256"] == raw_sha and first["collection"]["source_type"] == "file"
    assert [r["status"] for r in first["reviews"]] == ["confirmed", "reported"]
    assert [s["model_version"] for s in first["scores"]] == ["1"]
    assert {o["name"] for o in record["mentions"][1]["officials"]} == {"Anneke Visser", "Ruud Hoekstra"}
    text = pdf_text(files["aangifte-weerbaar.pdf"])
    flat = " ".join(text.split())
    created = first["created_at"]
    for expected in (
        "Anneke Visser", "burgemeester", "Gemeente Zwolle", "@AnnekeVisserZw",
        "we weten waar je woont <script>alert('xss')</script>",  # hostile markup drawn as the text it is
        "@boze_burger", "555001", "9001", "javascript:alert(document.cookie)",
        f"{created[:10]} {created[11:19]} UTC", "Europe/Amsterdam", "bron 'sample'", raw_sha,
        "test-keywords@1", "threat 0.95", "anna", "Adres genoemd; politie gebeld", "aangifte gedaan op 2026-11-30",
        "griffie: J. de Wit", "Aangifte doen", "0900-8844", "112", "Weerbaar Bestuur", "sha256sum -c SHA256SUMS",
        "Bericht 2 van 2", "Ruud Hoekstra",
    ):
        assert expected in flat, expected
    db = open_db(desk.db_path)
    packed = db.execute("SELECT actor, subject FROM audit_log WHERE action = 'mention.evidence_packed' ORDER BY id").fetchall()
    assert packed == [("griffie: J. de Wit", f"mention:{threat}"), ("griffie: J. de Wit", f"mention:{both}")]


def test_emoji_bidi_overrides_and_markup_never_break_the_pdf(desk):
    db = open_db(desk.db_path)
    insult = desk.mentions["insult_anneke"]
    hostile = "\u202eevil\u202c <b onmouseover=x>🤬 😀 🥳 \ue000 ĳs café\u200b (\\) %PDF-1.4 endobj"
    db.execute("UPDATE mentions SET text = ? WHERE id = ?", [hostile, insult])
    db.conn.commit()
    pack = zipfile.ZipFile(io.BytesIO(build_evidence_pack(db, [insult], "anna", desk.settings)))
    files = verify_sums(pack)
    flat = " ".join(pdf_text(files["aangifte-weerbaar.pdf"]).split())
    assert "[RIGHT-TO-LEFT OVERRIDE]evil[POP DIRECTIONAL FORMATTING] <b onmouseover=x>" in flat
    assert "[ZERO WIDTH SPACE]" in flat and "café" in flat and "(\\) %PDF-1.4 endobj" in flat
    assert "[FACE WITH PARTY HORN AND PARTY HAT]" in flat  # an emoji the font lacks is named, not dropped
    assert "[U+E000]" in flat  # a character without a name by its code point
    assert "@evilgnp.exe" in flat  # the override in the author's handle was stripped when the post was collected
    assert json.loads(files["record.json"])["mentions"][0]["text"] == hostile


def test_printable_names_what_the_font_cannot_draw():
    shown, replaced = printable("a\u202eb 😀 🫠\tc\nd")
    assert shown == "a[RIGHT-TO-LEFT OVERRIDE]b 😀 [MELTING FACE]    c\nd" and replaced == 2


def test_a_pack_for_an_unknown_mention_writes_nothing(desk):
    result = CliRunner().invoke(cli, ["evidence", str(desk.mentions["both"]), "424242", "-o", "pack.zip"])
    assert result.exit_code == 2 and "mention 424242: no such mention" in result.output
    assert not (desk.db_path.parent.parent / "pack.zip").exists()
