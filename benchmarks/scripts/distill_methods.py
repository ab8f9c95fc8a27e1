"""The method table of docs/distillation.md: distil one teacher several ways at the same step
budget, export and evaluate every student, and measure its agreement with the teacher.

A script of the repository (not installed); it writes only under ``--out``:

    .venv/bin/python benchmarks/scripts/distill_methods.py --teacher runs/cflow \
        --teacher-bundle bundles/cflow --out /tmp/distill-table --max-steps 1500 \
        --rows same-l1,same-l2,same-adv,cdcgan-l1,cdcgan-adv

Each row is three commands, printed and recorded with its numbers (``table.json``; rows measured
earlier under the same ``--out`` stay): ``edgegen distill`` (the row's student and method; every
row learns from the same teacher pairs — the first row computes them and ``--out`` keeps a copy
that the others start from, which distill reloads because its key matches), ``edgegen export
--opset 17`` and ``edgegen eval --samples N`` (fidelity, FID and pixel diversity vs the real
digits, per variant, from its JSON report; the guard and the truncation sweep are skipped — they
do not enter the table).

**Agreement with the teacher** is computed here, for measuring only (never a training signal):
for the same ``N`` portable latents and labels (eval's seed 777, labels ``i mod 10``), the share
of samples on which the bundle's evaluator gives the teacher bundle's image and the student
bundle's image the same label (fp32 variants, ONNX Runtime CPU).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

EDGEGEN = [sys.executable, "-m", "edgegen"]
# row name -> the distill options that make it
ROWS: dict[str, list[str]] = {
    "same-l1": ["--student", "same", "--method", "regress", "--loss", "l1"],
    "same-l2": ["--student", "same", "--method", "regress", "--loss", "l2"],
    "same-adv": ["--student", "same", "--method", "regress-adv", "--loss", "l1"],
    "cdcgan-l1": ["--student", "cdcgan", "--method", "regress", "--loss", "l1"],
    "cdcgan-adv": ["--student", "cdcgan", "--method", "regress-adv", "--loss", "l1"],
    "cmlp-l1": ["--student", "cmlp", "--method", "regress", "--loss", "l1"],
    "unet-l1": ["--student", "unet", "--method", "regress", "--loss", "l1"],
    "unet-l2": ["--student", "unet", "--method", "regress", "--loss", "l2"],
    "unet-adv": ["--student", "unet", "--method", "regress-adv", "--loss", "l1"],
}
EVAL_SEED = 777  # edgegen eval's default latents


def run(cmd: list[str], log: Path) -> float:
    """Run ``cmd`` (its output to ``log``); its wall time. Exit on failure."""
    print("$", shlex.join(cmd), flush=True)
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT)
    if rc:
        sys.exit(f"failed (exit {rc}); see {log}")
    return time.perf_counter() - t0


def agreement(teacher: Path, student: Path, n: int) -> dict[str, Any]:
    """The evaluator's labels on teacher vs student images of the same (z, label)."""
    import onnxruntime as ort

    from edgegen.runtime.latent import latent

    z = latent(EVAL_SEED, n, 784)
    y = (np.arange(n) % 10).astype(np.int64)

    def images(bundle: Path) -> np.ndarray:
        s = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
        return np.concatenate([s.run(["image"], {"z": z[i:i + 250], "label": y[i:i + 250]})[0]
                               for i in range(0, n, 250)])

    judge = ort.InferenceSession(str(teacher / "evaluator.onnx"),
                                 providers=["CPUExecutionProvider"])
    t_img, s_img = images(teacher), images(student)
    pt = judge.run(["logits"], {"image": t_img})[0].argmax(1)
    ps = judge.run(["logits"], {"image": s_img})[0].argmax(1)
    return {"agreement": float(np.mean(pt == ps)), "samples": n,
            "pixel_l1_to_teacher": float(np.abs(t_img - s_img).mean()),
            "student_fidelity_same_latents": float(np.mean(ps == y)),
            "teacher_fidelity_same_latents": float(np.mean(pt == y))}


def quality(report: Path) -> dict[str, Any]:
    """fidelity / FID / pixel diversity per variant from eval's JSON report."""
    rep = json.loads(report.read_text())
    out = {}
    for v in rep["variants"]:
        out[v["name"]] = {"fidelity": v["fidelity"], "fid": v["fid"]["value"],
                          "fid_floor": v["fid"]["floor"],
                          "diversity_pixel": v["diversity"]["pixel"]["ratio"],
                          "diversity_feature": v["diversity"]["feature"]["ratio"]}
    return out


def one_row(a: argparse.Namespace, name: str, pairs_from: Path | None) -> dict[str, Any]:
    """Distil, export and evaluate row ``name``; its commands and numbers."""
    run_dir, bundle, rep = a.out / "runs" / name, a.out / "bundles" / name, a.out / "eval" / name
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    if pairs_from is not None:  # the same teacher pairs as the first row (distill checks the key)
        shutil.copy(pairs_from, run_dir / "pairs.safetensors")
    distill = [*EDGEGEN, "distill", str(a.teacher), "--out", str(run_dir), *ROWS[name],
               "--max-steps", str(a.max_steps), "--pairs", str(a.pairs), "--steps",
               str(a.steps), "--guidance", str(a.guidance), "--evaluator", str(a.evaluator),
               "--force", *(["--threads", str(a.threads)] if a.threads else [])]
    t_distill = run(distill, a.out / f"{name}.distill.log")
    export = [*EDGEGEN, "export", str(run_dir), "--opset", "17", "--out", str(bundle), "--force",
              "--evaluator", str(a.evaluator)]
    run(export, a.out / f"{name}.export.log")
    ev = [*EDGEGEN, "eval", str(bundle), "--samples", str(a.samples), "--no-guard",
          "--truncation", "", "--out", str(rep)]
    run(ev, a.out / f"{name}.eval.log")
    result = json.loads((run_dir / "result.json").read_text())
    from edgegen.quality.flops import count_flops

    return {"row": name, "commands": [shlex.join(c) for c in (distill, export, ev)],
            "mflop_per_image": count_flops(bundle / "model.onnx", batch=1).per_image / 1e6,
            "distill_wall_s": round(t_distill, 1), "pairs_s": result["pairs_s"],
            "train_s": result["elapsed_s"], "steps": result["step"],
            "quality": quality(rep / "report.json"),
            "agreement": agreement(a.teacher_bundle, bundle, a.samples)}


def render(table: Path, teacher_report: Path | None, teacher_mflop: float = float("nan")
           ) -> str:
    """``table.json`` (and the teacher's eval report) as the Markdown table of the docs."""
    head = ("| row | student | method, loss | MFLOP / image | fidelity fp32 | fp16 | int8 | FID "
            "(floor) | pixel diversity | agreement with teacher | distil wall s |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    if teacher_report is not None:
        t = quality(teacher_report)
        other = [f"{t[v]['fidelity']:.2%}" if v in t else "—" for v in ("fp16", "int8")]
        lines.append(f"| teacher | cflow, 8 steps, guidance 1.5 (16 calls / image) | — | "
                     f"{teacher_mflop:.0f} | {t['fp32']['fidelity']:.2%} | {other[0]} | "
                     f"{other[1]} | {t['fp32']['fid']:.2f} "
                     f"({t['fp32']['fid_floor']:.2f}) | {t['fp32']['diversity_pixel']:.3f} | — "
                     "| — |")
    for r in json.loads(table.read_text()):
        q, opts = r["quality"], ROWS[r["row"]]
        mflop = f"{r['mflop_per_image']:.1f}" if "mflop_per_image" in r else "?"
        lines.append(f"| {r['row']} | {opts[1]} | {opts[3]}, {opts[5]} | {mflop} | "
                     f"{q['fp32']['fidelity']:.2%} | {q['fp16']['fidelity']:.2%} | "
                     f"{q['int8']['fidelity']:.2%} | {q['fp32']['fid']:.2f} "
                     f"({q['fp32']['fid_floor']:.2f}) | {q['fp32']['diversity_pixel']:.3f} | "
                     f"{r['agreement']['agreement']:.2%} | {r['distill_wall_s']:.0f} |")
    return head + "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--teacher", type=Path, required=True)
    p.add_argument("--teacher-bundle", type=Path, required=True,
                   help="the teacher exported at --steps / --guidance (for the agreement)")
    p.add_argument("--evaluator", type=Path, default=Path("runs/evaluator"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--rows", default="same-l1,same-adv,cdcgan-l1,cdcgan-adv")
    p.add_argument("--max-steps", type=int, default=1500)
    p.add_argument("--pairs", type=int, default=12000)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--guidance", type=float, default=1.5)
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--render", type=Path, default=None, metavar="TEACHER_EVAL_REPORT",
                   help="only write --out/table.md from --out/table.json and the teacher's "
                        "`edgegen eval` report.json")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.render is not None:
        from edgegen.quality.flops import count_flops
        from edgegen.runtime.sampler import calls_per_image

        per_call = count_flops(a.teacher_bundle / "denoiser.onnx", batch=1).per_image / 1e6
        (a.out / "table.md").write_text(render(a.out / "table.json", a.render,
                                               per_call * calls_per_image(a.steps, a.guidance)))
        return
    # rows measured earlier under the same --out stay in the table (a row run again replaces
    # its old numbers); every row starts from the pairs kept in --out (distill checks their key)
    table, kept = a.out / "table.json", a.out / "pairs.safetensors"
    rows = json.loads(table.read_text()) if table.exists() else []
    for name in a.rows.split(","):
        row = one_row(a, name, kept if kept.exists() else None)
        if not kept.exists():
            shutil.copy(a.out / "runs" / name / "pairs.safetensors", kept)
        rows = [r for r in rows if r["row"] != name] + [row]
        table.write_text(json.dumps(rows, indent=2))
        q, g = row["quality"]["fp32"], row["agreement"]
        print(f"{name}: fidelity {q['fidelity']:.2%}, FID {q['fid']:.2f}, pixel diversity "
              f"{q['diversity_pixel']:.2f}, agreement {g['agreement']:.2%}, fp16 "
              f"{row['quality'].get('fp16', {}).get('fidelity', float('nan')):.2%}, int8 "
              f"{row['quality'].get('int8', {}).get('fidelity', float('nan')):.2%}", flush=True)


if __name__ == "__main__":
    main()
