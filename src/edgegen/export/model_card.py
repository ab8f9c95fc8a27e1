"""The bundle's README.md: a model card written from its manifest (what it is, the contract,
the files with their measured deviation, how to run it)."""

from __future__ import annotations

from typing import Any


def model_card(m: dict[str, Any]) -> str:
    g = m["generator"]
    rows = "\n".join(
        f"| {name} | `{v['file']}` | {v['bytes']:,} | "
        f"{v.get('deviation_from_fp32', {}).get('max_abs', 0):.2e} | "
        f"{_pct(v.get('deviation_from_fp32', {}).get('label_agreement'))} |"
        for name, v in m["variants"].items())
    ev = m["evaluator"]
    labels = g.get("labels") or [str(d) for d in range(g["n_classes"])]
    named = ", ".join(labels[:10]) + (", ..." if len(labels) > 10 else "")
    return f"""# edgegen bundle — {g['architecture']} generator

A class-conditional image generator, bundled by edgegen {m['provenance']['edgegen']} at ONNX opset \
{g['opset']}. Ask it for a class ({g['n_classes']}: {named}) and give it a latent vector; it
draws an image of that class.

## Contract
- inputs: `z` float32 [batch, {g['z_dim']}], `label` int64 [batch] (0–{g['n_classes'] - 1})
- output: `image` float32 [batch, {', '.join(map(str, g.get('image_shape', [1, 28, 28])))}] \
in [-1, 1]
- to pixels: `{m['postprocess']['rule']}`
- latents: `{m['latent']['name']}` — see `manifest.json` → `latent.steps` and its test vectors;
  sample *i* of seed *s* is the same in every language and every batch size.

## Files
| variant | file | bytes | max abs deviation from fp32 | label agreement |
|---|---|---|---|---|
{rows}

Graph rewrites: {_rewrites_line(g.get('optimization') or {})}.
{_sampler_card(m.get("sampler"))}Evaluator: {_evaluator_line(ev)}.
Golden data: `golden/test_data_set_N/` (ONNX model-zoo layout) and Polygraphy JSON in `golden/`.
{_ort_line(m.get("ort_format"))}
## Run it
```
edgegen verify <this folder>                 # parity against the goldens and PyTorch
edgegen eval <this folder>                   # does it draw the digits it is asked for?
polygraphy run model.onnx --onnxrt --load-inputs golden/polygraphy_inputs.json \\
    --load-outputs golden/polygraphy_outputs.json --atol 1e-5 --rtol 0
```
```python
from edgegen.runtime import Generator
g = Generator.load("<this folder>")
images = g.generate(labels=[0, 1, 0], seed=42)   # uint8 [3, H, W] (RGB: [3, H, W, 3])
```
Every file's sha256 is in `manifest.json`; readers refuse a bundle whose files do not match.
"""


def _sampler_card(s: dict[str, Any] | None) -> str:
    if not s:
        return ""
    files = ", ".join(f"`{v['file']}`" for v in s["denoiser"]["variants"].values())
    return f"""## Sampler
`model.onnx` runs {s['steps']} Euler steps of a flow-matching model with classifier-free guidance
{s['guidance']:g}, unrolled (weights stored once; `z` is the initial noise). For other settings,
loop over the denoiser ({files}: x, t, label -> velocity; label {s['null_label']} is the null
class): `{s['formula']}`. In Python: `g.generate([3], seed=42, steps=8, guidance=1.5)`.

"""


def _rewrites_line(opt: dict[str, Any]) -> str:
    if not opt.get("enabled"):
        return "none (exported with --no-optimize)"
    if not opt.get("applied"):
        return "none applied"
    return ", ".join(f"`{r['name']}` ({len(r['sites'])} site(s))" for r in opt["applied"]) + \
        f" — exact within atol {opt['tolerance']['atol']:g}, rtol {opt['tolerance']['rtol']:g}" \
        " of the unrewritten graph (manifest: `generator.optimization`)"


def _ort_line(o: dict[str, Any] | None) -> str:
    if not o:
        return ""
    return (f"ORT format (ONNX Runtime Mobile, minimal builds; onnxruntime >= {o['onnxruntime']},"
            f" {o['optimization_style']} optimization style): "
            f"{', '.join(f'`{v}`' for v in o['models'].values())}; reduced-build operators in "
            f"`{o['required_operators']}`"
            f"{' (with types)' if o['type_reduction'] else ''}. In Python: "
            "`Generator.load(<this folder>, format=\"ort\")`.\n")


def _evaluator_line(ev: dict[str, Any] | None) -> str:
    if not ev:
        return "not included"
    return f"`evaluator.onnx` (held-out accuracy {_pct(ev['heldout_accuracy'])})"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.2%}"
