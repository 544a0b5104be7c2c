"""The model reads hidden spellings as what they spell, and ordinary text, numbers, links and handles unchanged."""

import pytest

from monitor.normalisation import normalise_for_model


@pytest.mark.parametrize(
    ("posted", "read"),
    [
        ("i k  m a a k  j e  a f", "ik maak je af"),
        ("ik m44k j3 @f", "ik maak je af"),
        ("w3 w3t3n w44r j3 w00nt", "we weten waar je woont"),
        ("k.a.n.k.e.r wethouder", "kanker wethouder"),
        ("k-u-t-w-i-j-f", "kutwijf"),
        ("k*a*n*k*e*r", "kanker"),
        ("𝐤𝐚𝐧𝐤𝐞𝐫 lijer", "kanker lijer"),
        ("kan\u200bker\u202e", "kanker"),
        ("🔪🔪 binnenkort bij jou", "mes mes binnenkort bij jou"),
        ("💣️ onder je auto", "bom onder je auto"),
        ("1d10ot", "idioot"),
        ("k!ll3r", "killer"),
        ("sch@@m je", "schaam je"),
        ("heeeeeel erg", "heel erg"),
    ],
)
def test_hidden_spellings_are_read_as_what_they_spell(posted, read):
    assert normalise_for_model(posted) == read


@pytest.mark.parametrize(
    "text",
    [
        "Om 10:30 op de A28 bij afslag 2e, €50 boete, 3x gebeld, 06-12345678",
        "@wethouder_dekker dank u wel!",
        "Zie https://ede.nl/a1b2 en mail info@ede.nl",
        "@jdeboer@mastodon.nl wat vindt u van de N34?",
        "100% mee eens!!!",
        "Het is 2026 en GS4 besloot, zie artikel 3.1",
        "u en ik gaan naar de raad",
        "Één café, coöperatie en reünie",
    ],
)
def test_ordinary_text_numbers_links_and_handles_stay_as_they_are(text):
    assert normalise_for_model(text) == text
