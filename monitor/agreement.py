"""Agreement between labellers: Cohen's kappa for two, Krippendorff's alpha (nominal) for any number with gaps.

Both are computed here rather than taken from a library: they are a few lines each, the runtime stays free of
scikit-learn, and tests check them against published figures (Krippendorff 2011, "Computing Krippendorff's
Alpha-Reliability", nominal alpha 0.743 on its 4-coder example; Cohen's kappa 0.4 on the 50-item example of
20/5/10/15). Both return None where they are undefined (every value the same: no variation to agree on).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float | None:
    """Return Cohen's kappa of two labellers' values on the same items (None if undefined or no items)."""
    if len(first) != len(second):
        raise ValueError(f"cohen_kappa: {len(first)} values against {len(second)}")
    n = len(first)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(first, second)) / n
    counts_first, counts_second = Counter(first), Counter(second)
    expected = sum(counts_first[value] * counts_second[value] for value in counts_first) / (n * n)
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


def krippendorff_alpha(units: Sequence[Sequence[Hashable | None]]) -> float | None:
    """Return Krippendorff's alpha (nominal) over UNITS, each the values its labellers gave (None: not labelled).

    Units with fewer than two values are not pairable and are left out, as the coefficient defines.
    """
    coincidences: Counter = Counter()
    for unit in units:
        values = [v for v in unit if v is not None]
        m = len(values)
        if m < 2:
            continue
        counts = Counter(values)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                pairs = n_c * (n_k - 1) if c == k else n_c * n_k
                coincidences[c, k] += pairs / (m - 1)
    totals: Counter = Counter()
    for (c, _), value in coincidences.items():
        totals[c] += value
    n = sum(totals.values())
    disagreeing = sum(value for (c, k), value in coincidences.items() if c != k)
    expected = sum(totals[c] * totals[k] for c in totals for k in totals if c != k)
    if n <= 1 or expected == 0:
        return None
    return 1 - (n - 1) * disagreeing / expected
