"""Evidence packs for a police report (aangifte): a PDF, a JSON record and SHA256SUMS, in one zip.

The PDF is for people (the official, the police officer taking the report); the JSON holds the same record exactly,
for anyone who wants to check it; SHA256SUMS (sha256sum format) covers both, so a copy can be shown unchanged.
Every post is hostile text: the PDF draws it as plain text (no markup is ever interpreted), and a character the
font cannot draw, or one that changes the reading direction or hides itself, is written as its Unicode name in
brackets, so nothing in the post can hide or reorder what the PDF shows. The JSON keeps the text byte for byte.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import json
import zipfile
from importlib.resources import files
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlite_utils

from . import __version__
from .db import audit, utcnow, write_transaction
from .rendering import char_name, is_hidden
from .reviews import STATUS_NAMES, mention_record
from .settings import Settings

PDF_NAME = "aangifte-weerbaar.pdf"
JSON_NAME = "record.json"
SUMS_NAME = "SHA256SUMS"
# How each source type reads posts, in words a police officer can check against the platform.
COLLECTION = {
    "x": "X API v2: recent search op @handle, of de mentions-tijdlijn van een geautoriseerd account",
    "mastodon": "Mastodon REST API: meldingen (mentions) van een geautoriseerd account, "
                "of een openbare hashtag-tijdlijn",
    "bluesky": "AT Protocol (Bluesky AppView): app.bsky.feed.searchPosts met mentions:, of meldingen van het account",
    "file": "bestand met berichten (JSON Lines of CSV) dat via de instellingen is ingelezen",
    "4cat": "export uit 4CAT (onderzoekstool), eenmalig ingelezen",
    "zeeschuimer": "export uit Zeeschuimer (browser-extensie), eenmalig ingelezen",
}
AANGIFTE_NOTE = (
    "Aangifte doen. Bij direct gevaar: bel 112. Anders: bel de politie op 0900-8844 en vraag om een afspraak voor "
    "aangifte van bedreiging of belediging van een politiek ambtsdrager; online aangifte is voor bedreiging meestal "
    "niet mogelijk. Neem dit pakket mee (geprint en het zip-bestand op een USB-stick) en een identiteitsbewijs. Voor "
    "agressie tegen politieke ambtsdragers gelden de Eenduidige Landelijke Afspraken (ELA) van politie en OM: snellere "
    "afhandeling en een hogere strafeis. U mag in de aangifte het adres van uw gemeente, provincie of waterschap "
    "opgeven in plaats van uw huisadres. Vraag om een kopie van de aangifte en noteer het registratienummer; zet de "
    "datum van de aangifte in Weerbaar (status 'aangifte gedaan').\n"
    "Steun. De burgemeester of griffie (voor raadsleden), de commissaris van de Koning of de dijkgraaf kan u helpen "
    "met de aangifte en met veiligheidsmaatregelen. Netwerk Weerbaar Bestuur (weerbaarbestuur.nl) biedt "
    "politieke ambtsdragers informatie en ondersteuning bij agressie en intimidatie. Controleer actuele "
    "telefoonnummers en werkwijze op politie.nl."
)


class EvidenceError(ValueError):
    """A pack cannot be made; the message names the mention."""


def _font_path(name: str) -> Path:
    """Return the path of a DejaVu font shipped inside matplotlib's package data (a pure PyPI install, no apt)."""
    return Path(str(files("matplotlib").joinpath("mpl-data", "fonts", "ttf", name)))


@functools.cache
def _drawable() -> frozenset[int]:
    """Return the code points DejaVu Sans has a glyph for."""
    from fontTools.ttLib import TTFont

    return frozenset(TTFont(_font_path("DejaVuSans.ttf")).getBestCmap())


def printable(text: str | None) -> tuple[str, int]:
    """Return TEXT as the PDF draws it, and how many characters were written as [UNICODE NAME] instead.

    Hidden characters (bidi overrides, zero-width joiners, controls) and whatever DejaVu Sans cannot draw (many
    emoji) are named in brackets: they can neither reorder nor hide part of the post, and the PDF never crashes.
    """
    if not text:
        return "", 0
    drawable = _drawable()
    out, replaced = [], 0
    for char in text:
        if char == "\t":
            out.append("    ")
        elif char != "\n" and (is_hidden(char) or ord(char) not in drawable):
            out.append(char_name(char))
            replaced += 1
        else:
            out.append(char)
    return "".join(out), replaced


def _both_times(stamp: str | None, zone: ZoneInfo) -> str:
    if not stamp:
        return "onbekend"
    moment = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    local = moment.astimezone(zone)
    return f"{moment.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC / {local:%Y-%m-%d %H:%M:%S %Z} ({zone.key})"


def _collection(record: dict, settings: Settings) -> dict:
    source = settings.sources.get(record["source"])
    kind = source.type if source is not None else record["source"].split(":")[0]
    return {"source": record["source"], "source_type": kind,
            "method": COLLECTION.get(kind, f"bron van het type {kind!r}"), "platform": record["platform"]}


def pack_record(
    db: sqlite_utils.Database, mention_ids: list[int], made_by: str, settings: Settings,
    current_model: tuple[str, str] | None = None, user=None,
) -> dict:
    """Return the JSON record of a pack: who made it and when, and every mention's full record."""
    mentions = []
    for mention_id in dict.fromkeys(mention_ids):
        record = mention_record(db, mention_id, settings.timezone, current_model, user)
        if record is None:
            raise EvidenceError(f"mention {mention_id}: no such mention (erased, or never stored)")
        record["collection"] = _collection(record, settings)
        for key in ("safe_url", "created_local", "collected_local"):
            record.pop(key)
        mentions.append(record)
    made_at = utcnow()
    return {
        "pack": {"made_by": made_by, "made_at": made_at, "timezone": settings.timezone,
                 "generator": f"weerbaar {__version__}", "files": [PDF_NAME, JSON_NAME, SUMS_NAME]},
        "mentions": mentions,
    }


def render_pdf(pack: dict) -> bytes:
    """Draw a pack's record as a PDF in Dutch: per mention the post, its provenance, scores and reviews."""
    from fpdf import FPDF

    zone = ZoneInfo(pack["pack"]["timezone"])
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_font("DejaVu", "", _font_path("DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", _font_path("DejaVuSans-Bold.ttf"))
    pdf.add_font("DejaVuMono", "", _font_path("DejaVuSansMono.ttf"))
    pdf.set_title("Weerbaar: bewijsstuk voor aangifte")
    pdf.set_author(printable(pack["pack"]["made_by"])[0])
    pdf.set_creator(pack["pack"]["generator"])
    replaced_total = 0

    def line(label: str, value: str | None, mono: bool = False) -> None:
        nonlocal replaced_total
        shown, replaced = printable(value if value not in (None, "") else "onbekend")
        replaced_total += replaced
        pdf.set_font("DejaVu", "B", 9)
        pdf.cell(45, 5, label)
        pdf.set_font("DejaVuMono" if mono else "DejaVu", "", 9)
        pdf.multi_cell(0, 5, shown, new_x="LMARGIN", new_y="NEXT", align="L")

    def heading(text: str, size: int = 12) -> None:
        pdf.set_font("DejaVu", "B", size)
        pdf.multi_cell(0, 7, printable(text)[0], new_x="LMARGIN", new_y="NEXT", align="L")
        pdf.ln(1)

    def section(title: str, rows: list, empty_label: str, empty_text: str) -> None:
        pdf.ln(2)
        pdf.set_font("DejaVu", "B", 10)
        pdf.cell(0, 6, title, new_x="LMARGIN", new_y="NEXT", align="L")
        if not rows:
            line(empty_label, empty_text)

    pdf.add_page()
    heading("Weerbaar: bewijsstuk voor aangifte", 15)
    line("Gemaakt door", pack["pack"]["made_by"])
    line("Gemaakt op", _both_times(pack["pack"]["made_at"], zone))
    line("Programma", pack["pack"]["generator"])
    line("Berichten", str(len(pack["mentions"])))
    pdf.ln(3)
    for number, record in enumerate(pack["mentions"], 1):
        if number > 1:
            pdf.add_page()
        heading(f"Bericht {number} van {len(pack['mentions'])} (Weerbaar-nummer {record['id']})")
        for official in record["officials"]:
            line("Gericht aan", f"{official['name']} ({official['role']}, {official['body_name']}), "
                                f"account {official['handle'] or 'onbekend'}")
        pdf.set_font("DejaVu", "B", 9)
        pdf.cell(0, 6, "Tekst, precies zoals verzameld:", new_x="LMARGIN", new_y="NEXT", align="L")
        shown, replaced = printable(record["text"])
        replaced_total += replaced
        pdf.set_font("DejaVu", "", 10)
        pdf.set_fill_color(242, 242, 242)
        pdf.multi_cell(0, 5.5, shown, border=1, fill=True, padding=2, new_x="LMARGIN", new_y="NEXT", align="L")
        pdf.ln(2)
        line("Auteur", record["author_handle"])
        line("Auteur-id (platform)", record["author_id"], mono=True)
        line("Platform", record["platform"])
        line("Bericht-id (platform)", record["post_id"], mono=True)
        line("Antwoord op", record["in_reply_to"], mono=True)
        line("URL", record["url"], mono=True)
        line("Geplaatst", _both_times(record["created_at"], zone))
        line("Verzameld", _both_times(record["collected_at"], zone))
        line("Verzameld via", f"bron '{record['collection']['source']}': {record['collection']['method']}")
        line("SHA-256 (ruwe data)", record["raw_sha256"], mono=True)
        section("Scores van het model (kans per categorie)", record["scores"], "Model", "niet gescoord")
        for score in record["scores"]:
            probabilities = ", ".join(f"{c} {p:.2f}" for c, p in sorted(score["probabilities"].items()))
            line("Model (versie)", f"{score['model']}@{score['model_version']}"
                                   f"{' (deze score telt in Weerbaar)' if score['counts'] else ''}")
            line("Kansen", probabilities)
            line("Labels van het model", ", ".join(score["labels"]) or "geen")
            line("Gescoord", _both_times(score["scored_at"], zone))
        section("Beoordelingen door medewerkers (oudste eerst)", record["reviews"], "Beoordeling",
                "nog niet beoordeeld")
        for review in record["reviews"]:
            line("Beoordeeld door", f"{review['reviewer']}, {_both_times(review['reviewed_at'], zone)}")
            line("Besluit", STATUS_NAMES.get(review["status"], review["status"])
                 + (f", aangifte gedaan op {review['reported_on']}" if review["reported_on"] else ""))
            line("Labels", ", ".join(review["labels"]) or "geen")
            if review["note"]:
                line("Notitie", review["note"])
            pdf.ln(1)
    pdf.add_page()
    heading("Over dit pakket")
    pdf.set_font("DejaVu", "", 9)
    pdf.multi_cell(
        0, 5,
        f"Dit zip-bestand bevat {PDF_NAME} (dit document), {JSON_NAME} (hetzelfde, exact en machineleesbaar) en "
        f"{SUMS_NAME} (SHA-256 van beide). Controleer met: sha256sum -c {SUMS_NAME}. De SHA-256 van de ruwe data is "
        "berekend over het bericht zoals het platform het leverde, op het moment van verzamelen; het platform kan "
        "het bericht aan de hand van het bericht-id bevestigen. Tekens die dit lettertype niet kan tonen (zoals de "
        "meeste emoji) en onzichtbare of leesrichting-omkerende tekens staan hier als [NAAM VAN HET TEKEN]; "
        f"{JSON_NAME} bevat de tekst exact. In dit document: {replaced_total} zulke teken(s).",
        new_x="LMARGIN", new_y="NEXT",
    )
    pdf.ln(3)
    heading("Aangifte doen en steun")
    pdf.set_font("DejaVu", "", 9)
    pdf.multi_cell(0, 5, AANGIFTE_NOTE, new_x="LMARGIN", new_y="NEXT", align="L")
    return bytes(pdf.output())


def build_evidence_pack(
    db: sqlite_utils.Database, mention_ids: list[int], made_by: str, settings: Settings,
    current_model: tuple[str, str] | None = None, user=None,
) -> bytes:
    """Return a zip holding the PDF, the JSON record and SHA256SUMS for MENTION_IDS; log each mention as packed.

    With USER (the desk's), the pack names only the officials USER may see.
    """
    if not mention_ids:
        raise EvidenceError("no mentions given")
    pack = pack_record(db, mention_ids, made_by, settings, current_model, user)
    contents = {
        PDF_NAME: render_pdf(pack),
        JSON_NAME: json.dumps(pack, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8") + b"\n",
    }
    sums = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in contents.items())
    contents[SUMS_NAME] = sums.encode("ascii")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    with write_transaction(db):
        for record in pack["mentions"]:
            audit(db, "mention.evidence_packed", f"mention:{record['id']}",
                  {"sha256_pdf": hashlib.sha256(contents[PDF_NAME]).hexdigest()}, made_by)
    return buffer.getvalue()
