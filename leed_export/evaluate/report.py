"""`report.md` of `leed-eval`: the exact protocol's table beside the paper's RaFD numbers
(`render_report`), and the real protocol's table (`render_real_report`)."""

from __future__ import annotations

PAPER_RAFD = {  # Tables 1-2 of the paper, RaFD (R is listed once per dataset)
    "StarGAN": {"fid": 62.51, "ssim": 0.8563, "G": 82.37, "R+G": 88.48},
    "GANimation": {"fid": 45.55, "ssim": 0.8686, "G": 84.36, "R+G": 92.31},
    "LEED (paper)": {"fid": 38.20, "ssim": 0.8833, "G": 88.67, "R+G": 93.25},
}
PAPER_RAFD_R = 92.21


def _neutralizer_section(neutralizer: dict | None) -> list[str]:
    if not neutralizer:
        return []
    rows = [(k, v) for k, v in neutralizer.items() if isinstance(v, dict)]
    return [
        "## Neutralizer (stage 1)",
        "",
        f"{neutralizer['faces']} held-out expressive faces, each with its subject's neutral photo at the same "
        "angle and gaze. Every edit starts from G(x, neutral): an expression it leaves in stays in the edit.",
        "",
        "| image | classified neutral (%) | SSIM to the own neutral photo |",
        "| --- | --- | --- |",
        *(f"| {k} | {v['classified_neutral']:.1f} | {v['ssim']:.4f} |" for k, v in rows),
        "",
    ]


def render_report(result: dict) -> str:
    """report.md: our table, the paper's RaFD numbers, the figures and what differs."""
    has_fid = any("fid" in m for m in result["methods"].values())
    head = "| method | pairs | SSIM | PSNR (dB) | G (%) | R+G (%) | FD-expr | ID verif. (%) |" + (
        " FID |" if has_fid else ""
    )
    lines = [
        f"# leed-eval report: `{result['model_dir']}`",
        "",
        f"Held-out subjects {', '.join(result['data']['held_out_subjects'])} of `{result['data']['data_dir']}` "
        f"({result['data']['held_out_images']} images, {result['data']['pairs']} edit pairs with a ground truth, "
        f"{result['data']['pairs_without_truth_skipped']} without one skipped); {result['seconds']} s.",
        "",
        f"R (expression classifier on real held-out images): **{result['R']:.2f}%**",
        "",
        *(
            [f"Every edit at alpha {result['alpha']:g} (the paper's tables: 1); the ground truth is alpha 1's.", ""]
            if result.get("alpha", 1.0) != 1.0
            else []
        ),
        head,
        "|" + " --- |" * (head.count("|") - 1),
    ]
    for name, m in result["methods"].items():
        row = (
            f"| {name} | {m['pairs']} | {m['ssim']:.4f} | {m['psnr']:.2f} | {m['G']:.2f} | {m['R+G']:.2f} | "
            f"{m['fd_expr']:.3f} | {m['id_verification']:.1f} |"
        )
        lines.append(row + (f" {m['fid']:.2f} |" if has_fid else ""))
    lines += [
        "",
        f"The paper on RaFD (Tables 1-2; FID with an ImageNet Inception, R = {PAPER_RAFD_R} for every method):",
        "",
        "| method | FID | SSIM | G (%) | R+G (%) |",
        "| --- | --- | --- | --- | --- |",
        *(f"| {k} | {v['fid']} | {v['ssim']} | {v['G']} | {v['R+G']} |" for k, v in PAPER_RAFD.items()),
        "",
        "**Not comparable in absolute terms**: ours are measured on the data given (synthetic faces "
        "unless it is RaFD), with small classifiers trained here on 64x64 crops, FD-expr in that "
        "classifier's feature space instead of FID (no Inception here), and SSIM against an exact "
        "ground truth. Compare rows of this table with each other; the ground-truth row is what a "
        "perfect editor would score.",
        "",
        *(f"- {note}" for note in result["data"]["notes"]),
        "",
        *_neutralizer_section(result.get("neutralizer")),
        "## Figures",
        "",
        *(f"- {k}: ![{k}]({v})" for k, v in result["figures"].items()),
        "",
    ]
    return "\n".join(lines)


def render_real_report(result: dict) -> str:
    """report.md of the real protocol: one table, every row on the same pairs."""
    d = result["data"]
    lines = [
        "# leed-eval: real people the model never saw",
        "",
        f"{d['pairs']} edits: every neutral photo of held-out people {', '.join(d['heldout_people'])} toward each "
        f"expression, references from the other held-out people (alpha {result['config']['alpha']:g}).",
        "",
        "| row | expression (fer) % | of ceiling % | same person < 0.6 % | < 0.45 % | ID distance | detail | toward % "
        "| codes tell apart % |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in result["rows"].items():
        codes = f"{r['code_separation']:.0f}" if "code_separation" in r else ""
        lines.append(
            f"| {name} | {r['expression']:.1f} | {r['expression_of_ceiling']:.0f} | {r['same_person_0.6']:.1f} | "
            f"{r['same_person_0.45']:.1f} | {r['id_distance']:.3f} | {r['detail']:.2f} | {r['toward']:.1f} | {codes} |"
        )
    lines += [
        "",
        "expression: fer's classifier calls the edit the target expression; of ceiling: that over fer's accuracy "
        "on the people's own photos of it. same person: dlib descriptor distance to the input. detail: median "
        "Laplacian variance of the edited face over the input's. toward: the edit's landmark geometry is closer "
        "to the person's own photos of the target than the input's is (the ground-truth row: one own photo "
        "against the others). codes tell apart: the % of held-out expressive photos whose reference code is "
        "nearest the mean code of their own expression over the other held-out people (chance: 1 in the "
        "number of expressions).",
        "",
        *_by_target_table(result["rows"]),
        *_by_feature_table(result["rows"]),
    ]
    return "\n".join(lines)


def _by_feature_table(rows: dict[str, dict]) -> list[str]:
    """The real report's third table: per row and target expression, how often each landmark
    feature alone moves closer to the person's own photos of it (which part of a face an edit
    gets right, which it moves the wrong way: under 50%)."""
    first = next(iter(rows.values()))["by_target"]
    names = list(next(iter(first.values()))["features"])
    lines = [
        "By landmark feature: % of edits that bring the feature closer to the person's own photos of the target.",
        "",
        "| row | target | " + " | ".join(n.replace("_", " ") for n in names) + " |",
        "| --- | --- |" + " --- |" * len(names),
    ]
    for name, r in rows.items():
        for b, c in sorted(r["by_target"].items()):
            lines.append(f"| {name} | {b} | " + " | ".join(f"{c['features'][n]:.0f}" for n in names) + " |")
    return [*lines, ""]


def _by_target_table(rows: dict[str, dict]) -> list[str]:
    """The real report's second table: toward % / expression % of every row per target expression."""
    targets = sorted({b for r in rows.values() for b in r["by_target"]})
    lines = [
        "By target expression: toward % / expression (fer) %.",
        "",
        "| row | " + " | ".join(targets) + " |",
        "| --- |" + " --- |" * len(targets),
    ]
    for name, r in rows.items():
        cells = [r["by_target"].get(b) for b in targets]
        lines.append(
            f"| {name} | " + " | ".join(f"{c['toward']:.0f} / {c['expression']:.0f}" if c else "" for c in cells) + " |"
        )
    return [*lines, ""]
