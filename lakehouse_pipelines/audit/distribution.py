"""Distribution drift, chosen by column type: PSI for numerics, Jensen-Shannon distance for categoricals.

Both compare the reference's stored counts with the new audit's counts taken over the *same* bins or
categories (metrics.py counts a new audit into the reference's histogram edges and tracked values).

**PSI** (population stability index) over bins i with reference shares p_i and new shares q_i:

    PSI = sum_i (q_i - p_i) * ln(q_i / p_i)

An empty bin would make the logarithm infinite, so shares are floored at EPSILON (1e-4) first (the usual
fix, also Evidently's). Bins include an underflow and an overflow bin, so values outside the reference's
range count as drift instead of vanishing. Rule of thumb from credit scoring (Siddiqi), which Evidently
and most monitoring tools follow: < 0.1 no significant change, 0.1-0.25 moderate, >= 0.25 significant.

**Jensen-Shannon distance** over the reference's tracked categories plus one "(other)" bucket for every
other non-null value, with m = (p + q) / 2:

    JSD = 1/2 * KL(p || m) + 1/2 * KL(q || m),   KL(a || b) = sum_i a_i * log2(a_i / b_i)
    distance = sqrt(JSD)            # 0 = identical, 1 = disjoint (log base 2)

m_i > 0 wherever p_i or q_i is, so no smoothing is needed; terms with a_i = 0 contribute 0. Evidently's
default drift threshold for JS distance is 0.1.

Verdicts use a "possible drift" band the way whylogs reports NO_DRIFT / POSSIBLE_DRIFT / DRIFT:
score < warn -> ok; warn <= score < fail -> warn ("possible drift"); score >= fail -> fail ("drift").
Defaults: PSI warn 0.1 / fail 0.25; JS warn 0.1 / fail 0.2. Nulls are not part of either distribution
(null rates have their own drift rows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from lakehouse_pipelines.audit.metrics import Metrics

EPSILON = 1e-4
DEFAULT_BANDS = {"psi": (0.1, 0.25), "js": (0.1, 0.2)}
OTHER = "(other)"


@dataclass(frozen=True)
class DistributionDrift:
    """One column's divergence from its reference, with the shares compared (for charts)."""

    column: str
    test: str  # "psi" | "js"
    score: float
    labels: tuple[str, ...]
    reference_shares: tuple[float, ...]
    new_shares: tuple[float, ...]


def psi(reference_counts: Sequence[int], new_counts: Sequence[int]) -> float:
    """Population stability index of two histograms over the same bins (shares floored at EPSILON)."""
    p, q = _shares(reference_counts), _shares(new_counts)
    return sum(
        (max(qi, EPSILON) - max(pi, EPSILON)) * math.log(max(qi, EPSILON) / max(pi, EPSILON))
        for pi, qi in zip(p, q, strict=True)
    )


def js_distance(reference_counts: Sequence[int], new_counts: Sequence[int]) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two count vectors over the same categories."""
    p, q = _shares(reference_counts), _shares(new_counts)
    m = [(pi + qi) / 2 for pi, qi in zip(p, q, strict=True)]

    def kl(a: Sequence[float]) -> float:
        return sum(ai * math.log2(ai / mi) for ai, mi in zip(a, m, strict=True) if ai > 0)

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


def band_verdict(score: float, warn: float, fail: float) -> str:
    """ok below warn, warn ("possible drift") from warn, fail ("drift") from fail."""
    if score >= fail:
        return "fail"
    return "warn" if score >= warn else "ok"


def distribution_drift(reference: Metrics, new: Metrics) -> list[DistributionDrift]:
    """Every column both audits can compare: numerics by PSI, categoricals by JS distance."""
    results = []
    for name, new_col in new.get("columns", {}).items():
        ref_col = reference.get("columns", {}).get(name)
        if not ref_col or ref_col.get("type") != new_col.get("type"):
            continue
        drift = _numeric(name, ref_col, new_col) or _categorical(name, ref_col, new_col)
        if drift is not None:
            results.append(drift)
    return results


def _numeric(name: str, ref: dict, new: dict) -> DistributionDrift | None:
    ref_hist, new_hist = ref.get("histogram"), new.get("histogram")
    if not ref_hist or not new_hist or ref_hist["edges"] != new_hist["edges"]:
        return None  # binned differently (or no values): no like-for-like comparison
    if not sum(ref_hist["counts"]) or not sum(new_hist["counts"]):
        return None
    edges = ref_hist["edges"]
    labels = (f"< {_short(edges[0])}", *(_short(e) for e in edges[:-1]), f"> {_short(edges[-1])}")
    return DistributionDrift(
        name,
        "psi",
        psi(ref_hist["counts"], new_hist["counts"]),
        labels,
        tuple(_shares(ref_hist["counts"])),
        tuple(_shares(new_hist["counts"])),
    )


def _categorical(name: str, ref: dict, new: dict) -> DistributionDrift | None:
    tracked = [v["value"] for v in ref.get("top_values") or []]
    if not tracked or not ref.get("count") or not new.get("count"):
        return None
    ref_counts = _category_counts(ref, tracked)
    new_counts = _category_counts(new, tracked)
    return DistributionDrift(
        name,
        "js",
        js_distance(ref_counts, new_counts),
        (*tracked, OTHER),
        tuple(_shares(ref_counts)),
        tuple(_shares(new_counts)),
    )


def _category_counts(metrics: dict, tracked: Sequence[str]) -> list[int]:
    """Counts of the tracked values plus the rest of the non-null values as one bucket."""
    by_value = {v["value"]: v["count"] for v in metrics.get("top_values") or []}
    counts = [by_value.get(value, 0) for value in tracked]
    return [*counts, max(0, metrics["count"] - sum(counts))]


def _shares(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [c / total for c in counts] if total else [0.0 for _ in counts]


def _short(value: float) -> str:
    return f"{value:.4g}"
