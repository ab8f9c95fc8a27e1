"""The eval report folder: ``report.md``, ``report.json`` and the pictures.

Kept apart from ``edgegen.quality.evaluate`` so the measurements read without the formatting. The
summary rows are shared with the CLI, so the terminal table and ``report.md`` say the same thing.
Pictures use Pillow and matplotlib's Agg canvas (no display, no global backend switch).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.quality.results import QualityReport, VariantQuality
from edgegen.runtime.fileio import atomic_file, atomic_write_text
from edgegen.training.images import save_grid

SUMMARY_COLUMNS = ("variant", "fidelity (95% CI)", "halluc.", "p(asked)<0.5", "FID (floor)",
                   "diversity feat/pix", "Δ vs ref (McNemar p)", "referee (agrees)", "ms/img")
TERMINAL_COLUMNS = ("variant", "fidelity (95% CI)", "halluc.", "FID (floor)",
                    "diversity feat/pix", "Δ vs ref (McNemar p)", "referee (agrees)")


# --------------------------------------------------------------------------- formatting

def pct(x: float | None, digits: int = 2) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}%}"


def ci(lo_hi: Any) -> str:
    lo, hi = lo_hi
    return f"{100 * lo:.1f}–{100 * hi:.1f}%"


def pvalue(p: float) -> str:
    return f"{p:.2g}" if p < 0.01 else f"{p:.2f}"


def summary_row(v: VariantQuality, columns: tuple[str, ...] = SUMMARY_COLUMNS) -> list[str]:
    """One variant as the strings of ``columns`` (a subset of ``SUMMARY_COLUMNS``)."""
    d = v.diversity
    div = f"{d['feature']['ratio']:.2f} / {d['pixel']['ratio']:.2f}"
    if d["collapsed"]:
        div += f" COLLAPSED {','.join(map(str, d['collapsed']))}"
    vs = v.vs_reference
    delta = "reference" if vs is None else \
        f"{vs['delta_pp']:+.2f} pp (p={pvalue(vs['p_value'])})"
    cells = [v.name, f"{pct(v.fidelity)} ({ci(v.ci95)})", pct(v.hallucination),
             pct(v.low_confidence), f"{v.fid['value']:.2f} ({v.fid['floor']:.2f})", div, delta,
             f"{pct(v.referee['fidelity'])} ({pct(v.referee['agreement_with_evaluator'], 1)})",
             f"{v.ms_per_image:.3f}"]
    by_name = dict(zip(SUMMARY_COLUMNS, cells))
    return [by_name[c] for c in columns]


def guard_row(v: VariantQuality) -> list[str]:
    g = v.guard or {}
    return [v.name, pct(v.fidelity), pct(g["fidelity"]), pct(v.referee["fidelity"]),
            pct(g["referee_fidelity"]), f"{g['fired']:,} ({pct(g['fired_rate'], 1)})",
            f"{g['rejected']:,}", f"{g['ms_per_image_plain']:.3f}",
            f"{g['ms_per_image_guarded']:.3f}", f"×{g['overhead']:.2f}"]


GUARD_COLUMNS = ("variant", "fidelity", "guarded fidelity", "referee", "referee guarded",
                 "fired", "still rejected", "ms/img plain", "ms/img guarded", "cost")
SWEEP_COLUMNS = ("psi", "fidelity (95% CI)", "p(asked)<0.5", "FID (floor)",
                 "diversity feat/pix", "referee fidelity")


def sweep_row(r: dict[str, Any]) -> list[str]:
    return [f"{r['psi']:g}", f"{pct(r['fidelity'])} ({ci(r['ci95'])})", pct(r["low_confidence"]),
            f"{r['fid']:.2f} ({r['fid_floor']:.2f})",
            f"{r['diversity_feature']:.2f} / {r['diversity_pixel']:.2f}",
            pct(r["referee_fidelity"])]


SAMPLER_COLUMNS = ("steps", "guidance", "fidelity (95% CI)", "FID (floor)",
                   "diversity feat/pix", "referee fidelity", "calls/img", "MFLOP/img", "ms/img")


def sampler_row(r: dict[str, Any]) -> list[str]:
    mark = " (exported)" if r["exported"] else ""
    return [f"{r['steps']}{mark}", f"{r['guidance']:g}", f"{pct(r['fidelity'])} ({ci(r['ci95'])})",
            f"{r['fid']:.2f} ({r['fid_floor']:.2f})",
            f"{r['diversity_feature']:.2f} / {r['diversity_pixel']:.2f}",
            pct(r["referee_fidelity"]), str(r["calls_per_image"]), f"{r['mflop_per_image']:.0f}",
            f"{r['ms_per_image']:.2f}"]


TEACHER_COLUMNS = ("variant", "agreement (95% CI)", "mean ∣Δ∣ pixels", "PSNR",
                   "feature distance (÷ real)", "Δ fidelity vs teacher (McNemar p)")
COST_COLUMNS = ("", "bundle", "calls/image", "MFLOP/image", "ms/img (eval)",
                "fidelity (95% CI)")


def db(x: float) -> str:
    return "∞ (identical)" if math.isinf(x) else f"{x:.1f} dB"


def teacher_row(v: VariantQuality) -> list[str]:
    t = v.vs_teacher or {}
    a, m = t["agreement"], t["mcnemar"]
    return [v.name, f"{pct(a['value'])} ({ci(a['ci95'])})", f"{t['mean_abs_pixel']:.4f}",
            db(t["psnr_db"]), f"{t['feature_distance']:.3f} ({t['feature_ratio']:.3f})",
            f"{t['delta_fidelity_pp']:+.2f} pp (p={pvalue(m['p_value'])})"]


def cost_rows(r: QualityReport) -> list[list[str]]:
    """Teacher and student side by side: network calls, MFLOP and measured time per image."""
    t = r.teacher or {}
    first = r.variants[0]
    fp32 = next((v for v in r.variants if v.name == "fp32"), first)
    rows = []
    for who, cost, where, fid, ms in (
            ("teacher", t["cost"], t["bundle"], (t["fidelity"], t["ci95"]), t["ms_per_image"]),
            (f"student ({fp32.name})", t["student_cost"], str(r.bundle),
             (fp32.fidelity, fp32.ci95), fp32.ms_per_image)):
        rows.append([who, f"`{where}` ({cost['architecture']})", str(cost["calls_per_image"]),
                     f"{cost['mflop_per_image']:.2f}", f"{ms:.3f}",
                     f"{pct(fid[0])} ({ci(fid[1])})"])
    return rows


def sizing_line(r: QualityReport) -> str:
    """How the sample count was chosen, in one sentence."""
    s = r.sizing
    if not s:
        return ""
    if s["rule"] == "fixed":
        return f"{s['samples']:,} samples per variant, fixed by `--samples`"
    met = "reached" if s["reached"] else "**not reached** (the cap stopped it)"
    return (f"{s['samples']:,} samples per variant, sized by the confidence interval: rounds of "
            f"{s['round_samples']:,} until the widest {s['interval']} half-width of "
            f"{s['watched']} is ≤ {100 * s['target_half_width']:.2f} pp (floor "
            f"{s['min_samples']:,}, cap {s['max_samples']:,}): "
            f"{100 * s['widest_half_width']:.2f} pp after {len(s['rounds'])} round(s), {met}")


def md_table(columns: tuple[str, ...] | list[str], rows: list[list[str]]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n"


# --------------------------------------------------------------------------- markdown

def markdown(r: QualityReport) -> str:
    """The whole report as markdown (pictures referenced by relative path)."""
    first = r.variants[0]
    parts = [
        f"# edgegen eval — `{r.bundle}`\n\n",
        f"**{_verdict(r)}** · provider `{r.provider}` · {r.samples:,} "
        f"samples per variant (labels balanced, portable latents seed {r.seed}"
        f"{'' if r.psi is None else f', truncation psi {r.psi:g}'}) · {r.elapsed_s:.0f} s\n\n",
        f"Sample count: {sizing_line(r)}.\n\n" if r.sizing else "",
        f"Real digits: {r.data['source']} at `{r.data['location']}` — {r.data['train']:,} "
        f"train / {r.data['heldout']:,} held-out ({r.data['note']}).\n\n",
    ]
    parts += [f"> **warning:** {w}\n\n" for w in r.warnings]
    parts += [f"- **gate failed:** {f}\n" for f in r.failures]
    parts += ["\n## Variants\n", md_table(SUMMARY_COLUMNS, [summary_row(v) for v in r.variants]),
              _legend(r, first), "\n## Targets\n",
              md_table(("variant", "what", "value", "target", "met"),
                       [[t["variant"], t["what"],
                         pct(t["value"]) if t["what"] == "fidelity" else f"{t['value']:+.2f}",
                         t["target"], "yes" if t["met"] else "**no**"] for t in r.targets]),
              _gates(r), *(_teacher_section(r) if r.teacher else []),
              "\n## Fidelity per label\n", _per_label_fidelity(r),
              "\n## FID per label (intra-class)\n", _per_label_fid(r),
              "\n## Diversity per label (generated / real mean pairwise distance)\n",
              _per_label_diversity(r)]
    if any(v.guard for v in r.variants):
        parts += ["\n## Guard\n", md_table(GUARD_COLUMNS,
                                           [guard_row(v) for v in r.variants if v.guard]),
                  _guard_legend(r)]
    if r.truncation:
        parts += [f"\n## Control knob: truncation (on {r.truncation[0]['variant']}, "
                  f"{r.truncation[0]['samples']:,} samples per psi)\n",
                  md_table(SWEEP_COLUMNS, [sweep_row(x) for x in r.truncation]),
                  "\n![truncation](truncation.png)\n\n"
                  "Rows of `truncation_samples.png`: one psi each, digits 0–9 from the same "
                  "latents.\n\n![truncation samples](truncation_samples.png)\n"]
    if r.sampler_sweep:
        first_row = r.sampler_sweep[0]
        parts += [f"\n## Control knob: the sampler — guidance and steps ({first_row['samples']:,} "
                  f"samples per setting, {first_row['runs']})\n\n"
                  "Guidance `w` is this family's controllability knob, as truncation is the "
                  "GAN's: `w = 1` is the plain conditional model, a larger `w` draws more "
                  "typical digits of the asked label (fidelity up) with less variety (diversity "
                  "down); the steps trade cost (MFLOP per image = network calls × the "
                  "denoiser's FLOPs) against sample quality (FID).\n\n",
                  md_table(SAMPLER_COLUMNS, [sampler_row(x) for x in r.sampler_sweep]),
                  "\n![sampler sweep](sampler_sweep.png)\n\n"
                  "Rows of `sampler_samples.png`: one setting each (table order), digits 0–9 "
                  "from the same initial noise.\n\n![sampler samples](sampler_samples.png)\n"]
    parts += ["\n## Samples\n"]
    for v in r.variants:
        parts.append(f"- **{v.name}** ({v.source}): [samples]({v.files.get('samples')}) · "
                     f"[hallucinated]({v.files.get('hallucinated')}) "
                     f"({len(v.hallucinated)} shown)\n")
    for v in r.variants:
        parts.append(f"\n### {v.name}\n\n![{v.name} samples]({v.files.get('samples')})\n\n"
                     f"![{v.name} hallucinated]({v.files.get('hallucinated')})\n")
    if r.notes:
        parts += ["\n## Notes\n"] + [f"- {n}\n" for n in r.notes]
    return "".join(parts)


def _verdict(r: QualityReport) -> str:
    if not r.passed:
        return "FAILED"
    return "gates passed" if any(v is not None for v in r.gates.values()) else \
        "no gate requested"


def _legend(r: QualityReport, first: VariantQuality) -> str:
    f = first.fid
    return (f"\nFidelity: the share of samples that `{r.evaluator['file']}` (on CPU; "
            f"{pct(r.evaluator['heldout_accuracy'])} on the held-out real digits) classifies "
            f"as the asked label, with a Wilson 95% interval; hallucination = 1 − fidelity. "
            f"FID: Fréchet distance in the evaluator's 128-d features against held-out half B "
            f"({f['n_generated']:,} generated vs {f['n_real']:,} real); the floor is held-out "
            f"half A vs B with the same counts and label mix (FID is biased by sample count, so "
            f"only these two are comparable). Diversity: mean pairwise distance within each label"
            f" (evaluator features / pixels) divided by the real digits' own; a label whose "
            f"lower ratio is under {first.diversity['collapse_ratio']:g} is marked COLLAPSED. "
            f"Δ: fidelity change "
            f"against `{r.reference}` in percentage points, McNemar's paired test on the "
            f"same samples. Referee: {r.referee['method']} ({r.referee['train_digits']:,} "
            f"digits; {pct(r.referee['heldout_accuracy'])} on the held-out digits) — it shares "
            f"nothing with the evaluator; in brackets, how often both name the same digit.\n")


def _teacher_section(r: QualityReport) -> list[str]:
    t = r.teacher or {}
    with_t = [v for v in r.variants if v.vs_teacher]
    labels = [str(p["label"]) for p in with_t[0].vs_teacher["per_label"]] if with_t else []
    per_label = [[v.name, *(pct(p["agreement"]["value"], 1) for p in v.vs_teacher["per_label"])]
                 for v in with_t]
    distance = [[v.name, *(f"{p['mean_abs_pixel']:.3f} / {p['feature_ratio']:.2f}"
                           for p in v.vs_teacher["per_label"])] for v in with_t]
    parts = [f"\n## Against the teacher `{t['bundle']}`\n\n"
             f"The same {r.samples:,} portable latents and labels through the teacher "
             f"({t['source']}) and through every variant; both images judged by "
             f"{t['judge']}, sha256 `{str(t['evaluator_sha256'])[:16]}…`.\n\n",
             md_table(COST_COLUMNS, cost_rows(r)), "\n",
             md_table(TEACHER_COLUMNS, [teacher_row(v) for v in with_t]),
             "\nAgreement: the share of (z, label) for which the evaluator names the same digit "
             "for the student's and the teacher's image (Wilson 95% interval). Mean ∣Δ∣: of the "
             "uint8 pixels a user sees, as a share of full scale; PSNR of the mean squared "
             "error (peak 1). Feature distance: mean Euclidean distance of the evaluator's "
             "features of the two images; in brackets divided by the mean distance between two "
             "real digits of the same label (0: the same image, ~1: as different as two real "
             "digits). Δ fidelity: the student's minus the teacher's, McNemar's paired test.\n",
             "\n### Agreement per label\n", md_table(["variant", *labels], per_label),
             "\n### Distance per label (mean ∣Δ∣ pixels / feature ÷ real)\n",
             md_table(["variant", *labels], distance),
             "\nRows of each picture: the teacher's images (T, one column per label), under "
             "them the student's (S) for the same seeds, captioned with the digit the evaluator "
             "saw (\"(wrong)\": not the asked one); then disagreements as T / S pairs (#sample)."
             "\n"]
    parts += [f"\n![teacher vs {v.name}]({v.files.get('teacher_pairs')})\n" for v in with_t
              if v.files.get("teacher_pairs")]
    return parts


def _gates(r: QualityReport) -> str:
    g = {k: v for k, v in r.gates.items() if v is not None}
    if not g:
        return ("\nNo gate requested (`--min-fidelity`, `--max-fid`, `--min-diversity`, "
                "`--min-agreement`).\n")
    return "\nGates: " + ", ".join(f"`--{k.replace('_', '-')} {v:g}`" for k, v in g.items()) + \
        f" — **{'passed' if r.passed else 'failed'}**.\n"


def _per_label_fidelity(r: QualityReport) -> str:
    labels = [str(p["label"]) for p in r.variants[0].per_label]
    rows = [[v.name, *(pct(p["value"], 1) for p in v.per_label)] for v in r.variants]
    return md_table(["variant", *labels], rows)


def _per_label_fid(r: QualityReport) -> str:
    first = r.variants[0].fid["per_label"]
    rows = []
    for i, p in enumerate(first):
        rows.append([str(p["label"]), f"{p['floor']:.2f}",
                     *(f"{v.fid['per_label'][i]['value']:.2f}" for v in r.variants),
                     f"{p['n_generated']} vs {p['n_real']}"])
    return md_table(["label", "floor", *(v.name for v in r.variants), "counts"], rows)


def _per_label_diversity(r: QualityReport) -> str:
    rows = []
    for i, p in enumerate(r.variants[0].diversity["per_label"]):
        rows.append([str(p["label"]), f"{p['feature']['real']:.2f} / {p['pixel']['real']:.2f}",
                     *(f"{v.diversity['per_label'][i]['feature']['ratio']:.2f} / "
                       f"{v.diversity['per_label'][i]['pixel']['ratio']:.2f}"
                       for v in r.variants)])
    return md_table(["label", "real distance feat / pix",
                     *(f"{v.name} ratio" for v in r.variants)], rows)


def _guard_legend(r: QualityReport) -> str:
    g = next(v.guard for v in r.variants if v.guard)
    return (f"\nThe guard (`edgegen.runtime.guard.guarded_generate`) redraws a sample the "
            f"evaluator does not accept (wrong digit, or p(asked) < {g['min_prob']:g}) with the "
            f"next seed of the documented sequence, at most {g['max_retries']} times. Its own "
            "fidelity is judged by the evaluator that accepted the samples, so the referee's "
            "fidelity on the guarded images is the independent figure. Cost: time per image of "
            "generation alone vs generation + evaluator + redraws, measured back to back over "
            "all samples (`perf_counter_ns`, after a warm-up call; one pass each, so a busy "
            "machine shows).\n")


# --------------------------------------------------------------------------- pictures

def captioned_grid(images: np.ndarray, captions: list[str], path: Path, cols: int = 10,
                   scale: int = 3) -> Path:
    """uint8 ``[N, H, W]`` (or ``[N, H, W, 3]``) tiles, each with a caption line under it, as
    one PNG (tiles shown 84 pixels high, as MNIST's 28 x 3)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    h, w = images.shape[1:3] if images.ndim >= 3 else (28, 28)
    img_h = 28 * scale
    img_w = max(1, round(img_h * w / h))
    cell_w, text_h = img_w + 14, 14
    n = max(len(images), 1)
    rows = (n + cols - 1) // cols
    mode = "RGB" if images.ndim == 4 else "L"
    canvas = Image.new(mode, (min(n, cols) * cell_w, rows * (img_h + text_h + 4)),
                       (255, 255, 255) if mode == "RGB" else 255)
    draw = ImageDraw.Draw(canvas)
    if not len(images):
        draw.text((4, 4), captions[0] if captions else "nothing to show",
                  fill=(0, 0, 0) if mode == "RGB" else 0, font=font)
    for i, (img, cap) in enumerate(zip(images, captions)):
        r, c = divmod(i, cols)
        x, y = c * cell_w, r * (img_h + text_h + 4)
        tile = Image.fromarray(img).resize((img_w, img_h), Image.NEAREST)
        canvas.paste(tile, (x + 7, y + 2))
        draw.text((x + 2, y + img_h + 3), cap, fill=(0, 0, 0) if mode == "RGB" else 0,
                  font=font)
    with atomic_file(path) as tmp:
        canvas.save(tmp, format="PNG")
    return path


def truncation_plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """Fidelity, diversity and FID against psi: where to sit on the knob."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    psi = [r["psi"] for r in rows]
    fig = Figure(figsize=(12, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2, ax3 = fig.subplots(1, 3)
    fid_ = np.array([r["fidelity"] for r in rows])
    lo = fid_ - np.array([r["ci95"][0] for r in rows])
    hi = np.array([r["ci95"][1] for r in rows]) - fid_
    ax1.errorbar(psi, 100 * fid_, yerr=100 * np.vstack([lo, hi]), marker="o", capsize=3,
                 label="evaluator")
    ax1.plot(psi, [100 * r["referee_fidelity"] for r in rows], marker="s", ls="--",
             label="referee (k-NN)")
    ax1.set(xlabel="truncation psi", ylabel="label fidelity (%)", title="fidelity")
    ax1.legend()
    ax2.plot(psi, [r["diversity_feature"] for r in rows], marker="o", label="features")
    ax2.plot(psi, [r["diversity_pixel"] for r in rows], marker="s", label="pixels")
    ax2.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax2.set(xlabel="truncation psi", ylabel="generated / real", title="diversity")
    ax2.legend()
    ax3.plot(psi, [r["fid"] for r in rows], marker="o", label="generated")
    ax3.plot(psi, [r["fid_floor"] for r in rows], ls=":", color="grey", label="real floor")
    ax3.set(xlabel="truncation psi", ylabel="FID (evaluator features)", title="MNIST-FID")
    ax3.legend()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def sampler_plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """Fidelity, diversity and FID against guidance, one line per step count."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for steps in dict.fromkeys(r["steps"] for r in rows):
        sub = [r for r in rows if r["steps"] == steps]
        w = [r["guidance"] for r in sub]
        label = f"{steps} steps"
        ax1.plot(w, [100 * r["fidelity"] for r in sub], marker="o", label=label)
        ax2.plot(w, [r["diversity_pixel"] for r in sub], marker="o", label=label)
        ax3.plot(w, [r["fid"] for r in sub], marker="o", label=label)
    ax1.set(xlabel="guidance w", ylabel="label fidelity (%)", title="fidelity (evaluator)")
    ax2.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax2.set(xlabel="guidance w", ylabel="generated / real (pixels)", title="diversity")
    ax3.plot([r["guidance"] for r in rows], [r["fid_floor"] for r in rows], ls="", marker="_",
             color="grey", label="real floor")
    ax3.set(xlabel="guidance w", ylabel="FID (evaluator features)", title="MNIST-FID")
    for ax in (ax1, ax2, ax3):
        ax.legend(fontsize=7)
    fig.suptitle("guidance is cflow's control knob (as truncation is the GAN's)")
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def write_report(r: QualityReport, out: Path, pictures: dict[str, dict[str, Any]],
                 strips: list[np.ndarray], sampler_strips: list[np.ndarray] | None = None
                 ) -> None:
    """Write every picture, then ``report.md`` and ``report.json`` (each file atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    for v in r.variants:
        pic = pictures[v.name]
        save_grid(pic["grid"], out / f"samples_{v.name}.png", nrow=int(pic["grid_columns"]))
        caps = [f"asked {h['asked']} / saw {h['saw']}" for h in v.hallucinated]
        captioned_grid(pic["hallucinated"], caps or [f"no hallucinated sample in {v.samples:,}"],
                       out / f"hallucinated_{v.name}.png")
        v.files = {"samples": f"samples_{v.name}.png",
                   "hallucinated": f"hallucinated_{v.name}.png"}
        if "teacher_pairs" in pic:
            tiles, tile_caps = pic["teacher_pairs"]
            captioned_grid(tiles, tile_caps, out / f"teacher_vs_{v.name}.png",
                           cols=len(v.per_label))
            v.files["teacher_pairs"] = f"teacher_vs_{v.name}.png"
    if r.truncation:
        truncation_plot(r.truncation, out / "truncation.png")
        save_grid(np.concatenate(strips), out / "truncation_samples.png", nrow=len(strips[0]))
        r.files.update({"truncation_plot": "truncation.png",
                        "truncation_samples": "truncation_samples.png"})
    if r.sampler_sweep and sampler_strips:
        sampler_plot(r.sampler_sweep, out / "sampler_sweep.png")
        save_grid(np.concatenate(sampler_strips), out / "sampler_samples.png",
                  nrow=len(sampler_strips[0]))
        r.files.update({"sampler_plot": "sampler_sweep.png",
                        "sampler_samples": "sampler_samples.png"})
    r.files.update({"markdown": "report.md", "json": "report.json"})
    atomic_write_text(out / "report.md", markdown(r))
    atomic_write_text(out / "report.json", r.to_json() + "\n")
