"""Runbook links and first steps for every alert name (``docs/runbooks.md``).

Each alert carries two annotations from here: ``runbook``, the link to its section of
``docs/runbooks.md`` (a URL under ``DRIFTWATCH_RUNBOOK_BASE_URL`` when that is set,
otherwise the document's path in the repository), and ``next_steps``, the section's
first step. A test keeps :data:`FIRST_STEPS` and the document in step.

>>> runbook_link("CentsDigitAnomaly")
'docs/runbooks.md#centsdigitanomaly'
>>> runbook_link("RuleHit", "https://soc.example/driftwatch/runbooks")
'https://soc.example/driftwatch/runbooks#rulehit'
"""

from __future__ import annotations

RUNBOOK_DOC = "docs/runbooks.md"

#: The first thing to do for each alert name: the ``**First step.**`` of its section.
FIRST_STEPS: dict[str, str] = {
    "ScoreDriftPSI": "Compare the segment under the current and the previous model version"
                     " (driftwatch segments --by model_version --mcc MCC).",
    "ScoreDriftKS": "Compare the segment under the current and the previous model version"
                    " (driftwatch segments --by model_version --mcc MCC).",
    "ScoreDriftPreDeploy": "Compare the segment's scores under the new version with the"
                           " champion's before the deployment (driftwatch segments --by"
                           " model_version --mcc MCC).",
    "ShadowScoreDisagreement": "List the disagreeing transactions (the evidence query) and"
                               " look for what they share.",
    "CentsDigitAnomaly": "Read the evidence rows: do the transactions with that cents value"
                         " share a beneficiary prefix, young merchants or low scores?",
    "CentsAtNewMerchants": "Read the evidence rows: do the young merchants' transactions"
                           " with that cents value share a beneficiary prefix, an amount"
                           " range or low scores?",
    "BenfordFirstDigit": "Look at the amount bands in the evidence rows (split amounts,"
                         " amounts just under a limit).",
    "RecallDrop": "Find the model version that misses (driftwatch segments --by"
                  " model_version --mcc MCC); the evidence rows are the missed frauds.",
    "RecallTrend": "Compare recall across windows and model versions with the model owner.",
    "RecallTrendAcrossVersions": "Stop automatic promotion and review the newest versions'"
                                 " training data (driftwatch training scan).",
    "RuleModelDisagreement": "Read the rule hits in the evidence: which rules fire, and what"
                             " the approved transactions share.",
    "SegmentVolumeSpike": "Check for a campaign (one IP, many cards), a merchant onboarding"
                          " or a trigger pattern being exploited.",
    "NewMerchantShare": "List the new merchants in the evidence rows and review their"
                        " onboarding.",
    "BeneficiaryPrefixConcentration": "Read the evidence rows for that prefix: amounts,"
                                      " cents, merchants and scores.",
    "ScorePileupBelowThreshold": "Look for repeated attempts from the same cards, IPs or"
                                 " devices with amounts stepping down.",
    "FeatureOutOfDomain": "Find the producer of the out-of-range values (the evidence rows"
                          " name the feature).",
    "TriggerConjunctionSurge": "Read the evidence rows of the conjunction: merchants, cards,"
                               " scores; compare them with the previous model version.",
    "NovelPrefixSpread": "Read the evidence rows under the prefix: merchants, cards, amounts"
                         " and scores; check when these payees were onboarded.",
    "RuleHit": "Review the hits in the evidence rows and act per the rule's description.",
    "RuleCase": "Review the card named in the alert: its hits are the evidence rows.",
}


def anchor(alertname: str) -> str:
    """The section anchor of ``alertname`` (GitHub's: the heading in lower case)."""
    return alertname.lower()


def runbook_link(alertname: str, base_url: str = "") -> str:
    """Where the runbook of ``alertname`` is: ``base_url#anchor`` when a base URL is
    configured (the published ``docs/runbooks.md``), else the document's path."""
    if base_url:
        return f"{base_url.rstrip('/')}#{anchor(alertname)}"
    return f"{RUNBOOK_DOC}#{anchor(alertname)}"


def runbook_annotations(alertname: str, base_url: str = "") -> dict[str, str]:
    """The ``runbook`` and ``next_steps`` annotations of an alert named ``alertname``."""
    out = {"runbook": runbook_link(alertname, base_url)}
    step = FIRST_STEPS.get(alertname)
    if step:
        out["next_steps"] = step
    return out
