"""Dutch threats against local officials, and hard negatives, written from templates with fictional slot fillers.

No Dutch threat corpus exists, so the threat head learns partly from these. Templates are grouped in named families;
each family is either for training or for evaluation, never both, so that the evaluation measures whether the head
generalises to phrasings it has not seen rather than whether it remembers a template. All names, towns, streets and
schools are made up.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

TRAIN = "train"
EVALUATION = "eval"

# fmt: off
# The slot and family tables are kept compact by hand: one family reads best as one block.
SLOTS: dict[str, tuple[str, ...]] = {
    "first": (
        "Jeroen", "Sanne", "Mehmet", "Fatima", "Pieter", "Ingrid", "Daan", "Noor", "Kees", "Yvonne", "Ruud", "Els",
        "Bram", "Hatice", "Wim", "Marloes", "Sjoerd", "Anouk", "Rachid", "Tineke",
    ),
    "last": (
        "Verhoeckx", "Brandsma", "Kalkhoven", "van Steenwijk", "Oudenrijn", "de Wolff", "Tjoelker", "Ramdin",
        "El Amrani", "Hoogenboom", "Bakkenes", "van der Loo", "Zwartjes", "Mulderink",
    ),
    "role": (
        "wethouder", "burgemeester", "raadslid", "gedeputeerde", "fractievoorzitter", "statenlid",
        "locoburgemeester", "dijkgraaf",
    ),
    "town": (
        "Haverdonk", "Zuiderlaak", "Bremveld", "Kranendijk", "Eikhorst", "Lindenwaard", "Moerveen", "Ruigendam",
        "Vlierhoven", "Oosterbroek-Zuid",
    ),
    "street": (
        "Lindelaan", "Kastanjehof", "Molenweg", "Dorpsstraat", "Beukenlaan", "Schoolstraat", "Vlietkade",
        "Zwanenhof", "Berkenpad", "Havenstraat",
    ),
    "number": tuple(str(n) for n in (3, 7, 12, 18, 21, 34, 45, 56, 61, 88, 102, 117)),
    "topic": (
        "het azc", "de windmolens", "de nieuwe woonwijk", "het betaald parkeren", "de sluiting van het zwembad",
        "de asielopvang", "het zonnepark", "de bomenkap", "de fusie", "de opvang van statushouders",
    ),
    "partner": ("je vrouw", "je man", "je vriendin", "je vriend"),
    "children": ("je kinderen", "je kleintjes", "je twee jongens", "je meiden"),
    "child": ("je dochter", "je zoon", "je jongste", "je oudste"),
    "school": ("De Klimop", "Het Kompas", "De Wilgenhoek", "De Vlinderboom", "Het Palet"),
    "when": ("vannacht", "vanavond", "morgen", "binnenkort", "na de raadsvergadering", "dit weekend"),
    "slur": ("verrader", "landverrader", "volksverrader", "zakkenvuller", "klootzak"),
    "time": ("19.30 uur", "20.00 uur", "14.00 uur", "10.30 uur"),
}


@dataclass(frozen=True)
class TemplateFamily:
    """A named group of templates with one threat label, kept wholly in one split."""

    name: str
    threat: bool
    split: str
    templates: tuple[str, ...]


@dataclass(frozen=True)
class TemplateText:
    """One generated text, with its label and the family and split it came from."""

    text: str
    threat: bool
    family: str
    split: str


FAMILIES: tuple[TemplateFamily, ...] = (
    # Threats.
    TemplateFamily("direct_kill", True, TRAIN, (
        "Ik maak je af {first}",
        "{role} {last}, jij bent dood",
        "Als ik je op straat zie schiet ik je neer, vuile {slur}",
        "Ik sla je helemaal verrot {role}",
        "Ik steek je overhoop {first} {last}",
        "Jij gaat eraan {first}, let maar op wat ik met je doe",
        "Ik snij je keel door, {slur}",
        "Ik ga je kapotmaken {role} {last}, echt waar",
    )),
    TemplateFamily("conditional_decision", True, TRAIN, (
        "Als {topic} er komt ben jij de eerste die het bezuurt {role}",
        "Stem jij voor {topic}, dan kun je maar beter niet meer over straat in {town}",
        "Als {topic} doorgaat kom ik persoonlijk langs met een honkbalknuppel",
        "Nog één zo'n besluit over {topic} en je ligt in het ziekenhuis, {first}",
        "Zet je {topic} door dan krijg je klappen, beloofd",
        "Komt {topic} in {town}? Dan hang jij, {role} {last}",
    )),
    TemplateFamily("veiled_home", True, TRAIN, (
        "We weten waar je woont, {role}",
        "Ik weet waar jij woont {first}. Tot snel",
        "Mooi huis heb je aan de {street}. Zou zonde zijn als daar iets mee gebeurt",
        "Wij weten je wel te vinden {role} {last}",
        "Leuke voordeur heb je {first}, we komen een keer aanbellen {when}",
        "We houden je huis in de gaten, {slur}",
    )),
    TemplateFamily("watch_out", True, TRAIN, (
        "Pas maar op {first} {last}",
        "Kijk maar goed uit als je {when} naar huis fietst, {role}",
        "Je zal niet lang meer {role} zijn, let maar op",
        "Wees maar voorzichtig in het donker {first}",
        "Dit gaat je opbreken {role}, reken maar dat je het gaat voelen",
        "Ik zou maar achterom kijken als ik jou was {first}",
    )),
    TemplateFamily("doxxing_address", True, TRAIN, (
        "{role} {first} {last} woont op {street} {number} in {town}. Ga maar eens langs",
        "Adres van die {slur}: {street} {number}, {town}. Jullie weten wat je moet doen",
        "Hier woont {first} {last}: {street} {number}. Doe er wat mee",
        "Voor wie {role} {last} wil opzoeken: {street} {number} {town}, auto staat voor de deur",
    )),
    TemplateFamily("call_violence", True, TRAIN, (
        "Iemand moet die {role} eens een lesje leren",
        "Tegen de muur met {first} {last}",
        "Ophangen die {slur} van de gemeente {town}",
        "Wie geeft die {role} eindelijk een kogel?",
        "Die {role} van {town} verdient een pak slaag, wie gaat er mee {when}?",
    )),
    TemplateFamily("revenge", True, TRAIN, (
        "Dit ga je bezuren {first}, dat beloof ik je",
        "Je krijgt nog wat je verdient {role} {last}, en niet via de stembus",
        "Wij vergeten dit niet {slur}, we rekenen met je af",
        "Na {topic} is het oorlog, en jij bent het doelwit {first}",
        "Vroeg of laat krijg jij een kogel, {role}",
    )),
    TemplateFamily("family_children", True, EVALUATION, (
        "{children} zitten op {school}, toch? Zou jammer zijn als ze iets overkomt",
        "Groetjes aan {partner}. We houden die ook in de gaten",
        "Hoe laat komt {child} uit school, {role} {last}?",
        "Denk aan je gezin voordat je voor {topic} stemt, {first}",
        "We weten op welke school {children} zitten, {slur}",
        "{partner} en {children} zijn niet veilig zolang jij {role} bent",
    )),
    TemplateFamily("arson_property", True, EVALUATION, (
        "Je huis gaat in de fik als {topic} doorgaat",
        "Straks staat je auto in brand, {role}",
        "Een molotov door je raam en het is klaar met jou {first}",
        "Ik steek je tent aan {slur}",
        "Benzine en een aansteker, meer is niet nodig voor het huis van {role} {last}",
    )),
    TemplateFamily("coming_to_get_you", True, EVALUATION, (
        "We komen je halen {first} {last}",
        "{when} staan we bij je voor de deur, {role}",
        "Wacht maar tot we je {when} tegenkomen, {slur}",
        "Jouw dagen zijn geteld {role} {last}",
        "Geniet nog maar even, {first}. {when} ben je aan de beurt",
    )),
    # Hard negatives: violent words used figuratively, reports and condemnations of threats, sharp criticism, praise.
    TemplateFamily("figurative_debate", False, TRAIN, (
        "{first} {last} werd volledig afgemaakt in het debat over {topic}",
        "De oppositie sloeg het voorstel van {role} {last} helemaal kapot",
        "Wat een afstraffing voor {role} {last} in de raad van {town}",
        "{first} maakte gehakt van de begroting, sterk optreden",
        "Het plan voor {topic} werd met de grond gelijk gemaakt in de commissie",
    )),
    TemplateFamily("news_report", False, TRAIN, (
        "{role} {first} {last} uit {town} bedreigd na besluit over {topic}",
        "Politie onderzoekt dreigbrief aan de burgemeester van {town}",
        "Man (34) aangehouden voor het bedreigen van een {role} in {town}",
        "Steeds meer lokale politici krijgen te maken met intimidatie, blijkt uit onderzoek",
        "Beveiliging voor {role} {last} na bedreigingen rond {topic}",
    )),
    TemplateFamily("harsh_criticism", False, TRAIN, (
        "{role} {last} moet aftreden na dit fiasco rond {topic}",
        "Wat een slecht besluit over {topic}, dit onthouden we bij de verkiezingen",
        "Ik ga nooit meer op jullie stemmen na {topic}",
        "Schandalig hoe dit college in {town} met ons belastinggeld omgaat",
        "{first} {last} luistert totaal niet naar de inwoners, teleurstellend",
        "Motie van wantrouwen tegen {role} {last}, het is tijd",
    )),
    TemplateFamily("praise_thanks", False, TRAIN, (
        "Dank je wel {first} voor je inzet voor {town}",
        "Goed bezig {role} {last}!",
        "Fijn dat je gisteren langskwam op het buurtfeest, {first}",
        "Eindelijk een {role} die luistert, bedankt voor het gesprek over {topic}",
        "Top geregeld met {topic}, complimenten aan {role} {last}",
    )),
    TemplateFamily("neutral_agenda", False, TRAIN, (
        "De raadsvergadering over {topic} begint om {time} in het gemeentehuis van {town}",
        "Morgen spreekuur met {role} {first} {last}, aanmelden via de website",
        "Inloopavond over {topic} op de {street} {number}, iedereen welkom",
        "{role} {last} opent {when} de nieuwe bibliotheek in {town}",
    )),
    TemplateFamily("figurative_everyday", False, TRAIN, (
        "Ik ga dood van het lachen om dat filmpje van {role} {last}",
        "Die {role} schiet zichzelf echt in de voet met {topic}",
        "Dit plan is de doodsteek voor de middenstand in {town}",
        "We hebben ze zaterdag ingemaakt, {first} stond zelf op doel",
        "{topic} is een tijdbom onder de begroting van {town}",
    )),
    TemplateFamily("friendly_home_family", False, TRAIN, (
        "Mooi huis hebben jullie gekocht aan de {street}, gefeliciteerd {first}!",
        "Zag {child} vandaag bij het voetballen, wat een talent {first}",
        "Doe de groeten aan {partner}, was gezellig op de braderie",
        "Ik kom {when} even langs met de handtekeningen voor het buurtinitiatief, {role}",
        "Weet je nog waar de buurtvereniging woont? {street} {number}, kom gerust langs",
    )),
    TemplateFamily("reporting_threats", False, TRAIN, (
        "Ik heb aangifte gedaan van de dreigmail aan {role} {last}",
        "Intimidatie van bestuurders in {town} is onacceptabel",
        "De gemeente {town} opent een meldpunt voor bedreigde raadsleden",
        "Een {role} bedreigen is een misdrijf, meld het altijd bij de politie",
        "Respect voor {first} {last}, die ondanks alle haat gewoon doorgaat",
    )),
    # Insults without a threat: aggression, but not a threat, so the threat head must not learn "slur means threat".
    TemplateFamily("insult_only", False, TRAIN, (
        "{role} {last} is een vuile {slur}",
        "Wat ben jij een {slur} {first}",
        "Die {role} van {town} is een grote {slur} en een leugenaar",
        "Kapsones heeft ze, die {first} {last}, een waardeloze {slur}",
        "Hoe dom kun je zijn {role}, echt een sukkel",
        "{first} {last} is gewoon een incompetente idioot",
    )),
    TemplateFamily("figurative_polls", False, EVALUATION, (
        "Je wordt afgemaakt in de peiling, {first}",
        "Jullie partij wordt weggevaagd bij de verkiezingen in {town}",
        "De coalitie gaat keihard onderuit door {topic}",
        "{role} {last} wordt politiek gefileerd als dit uitkomt",
        "Electoraal ga je eraan, {first}, wacht maar af",
    )),
    TemplateFamily("condemn_quote", False, EVALUATION, (
        "Iemand schreef 'we weten waar je woont' onder de post van {first} {last}. Walgelijk, doe aangifte",
        "'Ik maak je af' sturen naar een {role} is gewoon strafbaar. Schaam je",
        "Bedreigingen als 'pas maar op' horen niet thuis in de politiek van {town}",
        "{role} {last} deelt de dreigberichten die hij kreeg over {topic}. Dit moet stoppen",
    )),
    TemplateFamily("friendly_personal", False, EVALUATION, (
        "Leuk je gisteren te zien bij de bakker {first}, groetjes aan {partner}",
        "We komen je {when} ophalen voor de opening van het zwembad, {role}",
        "De kinderen van groep 8 van {school} komen {when} vragen stellen aan {role} {last}",
        "Ik breng die ladder {when} wel terug naar de {street}, {first}",
        "Gefeliciteerd met de verjaardag van {child}, {first}!",
    )),
    TemplateFamily("insult_mockery", False, EVALUATION, (
        "Clown van een {role}, ga toch een echte baan zoeken",
        "{first} {last} heeft het IQ van een baksteen",
        "Leugenachtige {slur}, niemand in {town} gelooft je nog",
        "Hahaha {role} {last} snapt er echt helemaal niks van, wat een mongool",
        "Zielig mannetje die {role}, schaam je kapot",
    )),
    TemplateFamily("safety_support", False, EVALUATION, (
        "Sterkte {first}, niemand verdient zulke bedreigingen",
        "Goed dat {town} extra beveiliging regelt voor raadsleden",
        "Wie een {role} bedreigt, moet worden vervolgd. Volledige steun voor {first} {last}",
        "Laat je niet wegjagen {role} {last}, wij staan achter je",
    )),
)
# fmt: on

_SLOT = re.compile(r"\{(\w+)\}")


def _fill(template: str, rng: random.Random) -> str:
    text = _SLOT.sub(lambda match: rng.choice(SLOTS[match.group(1)]), template)
    return text[0].upper() + text[1:]


def _vary(text: str, rng: random.Random) -> str:
    """Give the text some of the surface noise of real posts: case, punctuation, a reply handle, an emoji."""
    roll = rng.random()
    if roll < 0.25:
        text = text.lower()
    elif roll < 0.3:
        text = text.upper()
    ending = rng.choice(("", "", ".", "!", "!!", " 😡", " 🙂", "...", "?"))
    if not text.endswith(("?", ".")):
        text += ending
    if rng.random() < 0.2:
        text = f"@{rng.choice(SLOTS['first']).lower()}{rng.randint(1, 99)} {text}"
    return text


def generate_templates(seed: int = 0, per_family: int = 60, split: str | None = None) -> list[TemplateText]:
    """Return up to PER_FAMILY distinct texts from each family (of SPLIT, or all), the same for the same SEED."""
    texts = []
    for family in FAMILIES:
        if split is not None and family.split != split:
            continue
        # One generator per family, so adding a family does not change the texts of the others.
        rng = random.Random(f"{seed}:{family.name}")
        seen: set[str] = set()
        for _ in range(per_family * 20):
            if len(seen) == per_family:
                break
            text = _vary(_fill(rng.choice(family.templates), rng), rng)
            if text not in seen:
                seen.add(text)
                texts.append(TemplateText(text=text, threat=family.threat, family=family.name, split=family.split))
    return texts
