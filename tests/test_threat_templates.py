"""The Dutch threat templates: well-formed families, a clean train/evaluation split, and deterministic generation."""

from __future__ import annotations

import re
from collections import Counter
from difflib import SequenceMatcher

import pytest

import monitor.training.threat_templates as threat_templates
from monitor.training.threat_templates import EVALUATION, FAMILIES, SLOTS, TRAIN, TemplateFamily, generate_templates

MIN_TEMPLATES = 8
SLOT = re.compile(r"\{(\w+)\}")


def _families(split: str, threat: bool) -> list[TemplateFamily]:
    return [f for f in FAMILIES if f.split == split and f.threat == threat]


def _normalised(template: str) -> str:
    return SLOT.sub("#", template.lower())


def test_family_names_are_unique_and_splits_are_known():
    names = [family.name for family in FAMILIES]
    assert len(names) == len(set(names)), [name for name, n in Counter(names).items() if n > 1]
    assert {family.split for family in FAMILIES} == {TRAIN, EVALUATION}


def test_every_slot_referenced_exists_and_every_slot_is_used():
    used = set()
    for family in FAMILIES:
        for template in family.templates:
            for slot in SLOT.findall(template):
                assert slot in SLOTS, f"{family.name}: unknown slot {{{slot}}} in {template!r}"
                used.add(slot)
            # Only slot braces: a stray brace would survive into the generated text.
            assert "{" not in SLOT.sub("", template) and "}" not in SLOT.sub("", template), template
    assert set(SLOTS) == used, f"unused slots: {set(SLOTS) - used}"
    for slot, fillers in SLOTS.items():
        assert fillers and len(fillers) == len(set(fillers)), f"slot {slot} is empty or repeats a filler"


def test_every_family_has_enough_distinct_templates():
    for family in FAMILIES:
        assert len(family.templates) >= MIN_TEMPLATES, f"{family.name} has {len(family.templates)} templates"
        assert len(set(family.templates)) == len(family.templates), f"{family.name} repeats a template"


def test_both_splits_have_enough_threat_and_hard_negative_families():
    assert len(_families(TRAIN, True)) >= 17
    assert len(_families(EVALUATION, True)) >= 8
    assert len(_families(EVALUATION, False)) >= 8
    for split in (TRAIN, EVALUATION):
        labels = {text.threat for text in generate_templates(per_family=5, split=split)}
        assert labels == {True, False}, f"the {split} split needs threats and hard negatives"


def test_no_template_is_in_both_splits():
    train = {t for f in FAMILIES if f.split == TRAIN for t in f.templates}
    evaluation = {t for f in FAMILIES if f.split == EVALUATION for t in f.templates}
    assert not train & evaluation
    # Nor the same template up to case and slot names.
    assert not {_normalised(t) for t in train} & {_normalised(t) for t in evaluation}


def test_no_evaluation_template_is_a_near_copy_of_a_training_template():
    # Compared word by word, with slots as one placeholder word; a sentence shared bar a word or two is a near copy.
    def words(template: str) -> list[str]:
        return re.findall(r"[\w']+|#", _normalised(template))

    evaluation = [(f.name, t, words(t)) for f in FAMILIES if f.split == EVALUATION for t in f.templates]
    near = []
    matcher = SequenceMatcher(autojunk=False)
    for family in FAMILIES:
        if family.split != TRAIN:
            continue
        for template in family.templates:
            matcher.set_seq2(words(template))  # difflib caches what it learns about the second sequence
            for name, other, other_words in evaluation:
                matcher.set_seq1(other_words)
                if matcher.real_quick_ratio() > 0.75 and matcher.quick_ratio() > 0.75 and matcher.ratio() > 0.75:
                    near.append((name, other, family.name, template))
    assert not near, near


@pytest.mark.parametrize("seed", [0, 1])
def test_no_generated_text_is_in_both_splits(seed):
    texts = generate_templates(seed=seed, per_family=60)
    train = {t.text for t in texts if t.split == TRAIN}
    evaluation = {t.text for t in texts if t.split == EVALUATION}
    assert not train & evaluation
    assert not {t.lower() for t in train} & {t.lower() for t in evaluation}


def test_every_family_fills_sixty_distinct_texts_in_its_own_split():
    texts = generate_templates(seed=0, per_family=60)
    families = {family.name: family for family in FAMILIES}
    assert Counter(t.family for t in texts) == {name: 60 for name in families}
    for text in texts:
        family = families[text.family]
        assert (text.split, text.threat) == (family.split, family.threat)
        assert "{" not in text.text and "}" not in text.text
    assert len({t.text for t in texts}) == len(texts)


def test_generation_is_deterministic_and_split_filtered():
    assert generate_templates(seed=0, per_family=60) == generate_templates(seed=0, per_family=60)
    assert generate_templates(seed=0, per_family=10) != generate_templates(seed=1, per_family=10)
    everything = generate_templates(seed=2, per_family=10)
    for split in (TRAIN, EVALUATION):
        assert generate_templates(seed=2, per_family=10, split=split) == [t for t in everything if t.split == split]


def test_adding_a_family_leaves_the_other_families_texts_unchanged(monkeypatch):
    before = generate_templates(seed=0, per_family=20)
    extra = TemplateFamily("zz_extra", False, TRAIN, ("Extra tekst over {topic} in {town}",))
    monkeypatch.setattr(threat_templates, "FAMILIES", (extra, *FAMILIES))
    after = generate_templates(seed=0, per_family=20)
    assert [t for t in after if t.family != "zz_extra"] == before


def test_no_template_is_a_bare_death_wish():
    # Death wishes without intent are ambiguous, so the rules keep them out of both labels.
    wish = re.compile(r"\b(hoop|wens|hopelijk)\b.*\b(dood|sterf|sterft|sterven|crepeer|ziek|kanker|tering)\b")
    curse = re.compile(r"\bkrijg (de|een) (kanker|tering|tyfus|pest|klere)\b")
    for family in FAMILIES:
        for template in family.templates:
            lower = template.lower()
            assert not wish.search(lower) and not curse.search(lower), f"{family.name}: {template!r}"
