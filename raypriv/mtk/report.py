"""The text form of an MTK evaluation report (``report.txt`` beside ``report.json``): per task
and key condition, accuracy and the share of locked answers; leakage against its references;
the key-recovery audit."""
from __future__ import annotations


def format_report(report: dict) -> str:
    """The accuracy table (tasks × conditions) and the leakage table, as text."""
    names = report["tasks"]["names"]
    secured = set(report["tasks"]["secured"])
    conds = list(report["accuracy"])
    lines = ["task".ljust(14) + "".join(c[:16].rjust(17) for c in conds)]
    for t in names:
        tag = f"{t}{' *' if t in secured else ''}"
        lines.append(tag.ljust(14) + "".join(f"{report['accuracy'][c][t]:>16.1%} " for c in conds))
    lines.append("(* secured)")
    if report.get("locked") and report["tasks"].get("locked"):
        lines.append("share of locked answers (secured tasks; scored as a uniform guess above)")
        for t in report["tasks"]["secured"]:
            lines.append(f"{t:<14}" + "".join(f"{report['locked'][c][t]:>16.1%} " for c in conds))
    if report["leakage"]:
        lines.append("")
        lines.append("leakage (un-keyed)  base rate  irreducible  from unsecured outputs  from unsecured answers  "
                     "from all outputs")
        for t, v in report["leakage"].items():
            lines.append(f"{t:<19} {v['base_rate']:>9.1%}  {v['irreducible']:>11.1%}  "
                         f"{v['from_unsecured_outputs']:>22.1%}  {v['from_unsecured_answers']:>22.1%}  "
                         f"{v['from_all_outputs']:>16.1%}")
    return "\n".join(lines)


def format_audit(audit: dict) -> str:
    """The key-recovery audit: per secured task and attacker size, the accuracy its pattern unlocks."""
    lines = [f"key-recovery audit (attacker images from {audit['attacker']}; scored on {audit['scored_rows']} "
             "held-out images)", "task           attacker images   unlocked   best start   locked answers"]
    for task, by_size in audit["tasks"].items():
        for n, v in by_size.items():
            lines.append(f"{task:<14} {n:>15}   {v['unlocked']:>8.1%}   {v['best']:>10.1%}   {v['locked']:>14.1%}")
    if audit.get("note"):
        lines.append(f"note: {audit['note']}")
    return "\n".join(lines)
