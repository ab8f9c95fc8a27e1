"""The npm package edgegen-runtime (js/) as a user gets it: `npm pack`ed, installed into a fresh
folder with onnxruntime-node / onnxruntime-web, its own tests run there (Node) and in headless
Chromium, its declarations checked by `tsc --noEmit`, and its bytes equal to the Python
runtime's for every golden set and 1,000 (label, seed) pairs per family (0 differing)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "js"


SCHEMA = ROOT / "runtime" / "src" / "edgegen" / "runtime" / "bundle.schema.json"
MAX_TARBALL = 100_000  # bytes, ONNX Runtime excluded (it is a peer dependency)


def _members(tarball: Path) -> dict[str, bytes]:
    with tarfile.open(tarball) as tar:
        return {m.name.removeprefix("package/"): tar.extractfile(m).read()
                for m in tar.getmembers() if m.isfile()}


def test_tarball_ships_what_runs_and_the_one_schema(js_pack: dict[str, Any]) -> None:
    files = _members(js_pack["path"])
    assert js_pack["tgz_bytes"] <= MAX_TARBALL, js_pack["tgz_bytes"]
    print(f"\nnpm tarball {js_pack['filename']}: {js_pack['tgz_bytes']:,} bytes "
          f"({js_pack['unpackedSize']:,} unpacked, {len(files)} files)")
    tops = {name.split("/")[0] for name in files}
    assert tops == {"package.json", "README.md", "LICENSE", "bundle.schema.json",
                    "bundle.schema.validate.js", "src", "bin", "types"}, tops
    assert not any(n.startswith(("test/", "scripts/")) for n in files)
    # the packed schema is the one file, byte for byte; the validator was compiled from it
    assert files["bundle.schema.json"] == SCHEMA.read_bytes()
    stamp = hashlib.sha256(SCHEMA.read_bytes()).hexdigest()
    assert f'export const SCHEMA_SHA256 = "{stamp}";' in files["bundle.schema.validate.js"].decode()
    assert files["LICENSE"] == (ROOT / "LICENSE").read_bytes()
    # postpack removed the copies: the checkout keeps the schema once
    assert not (JS / "bundle.schema.json").exists()
    assert not (JS / "bundle.schema.validate.js").exists()
    manifest = json.loads(files["package.json"])
    assert set(manifest["peerDependencies"]) == {"onnxruntime-node", "onnxruntime-web"}
    assert "onnxruntime-node" not in manifest.get("dependencies", {})


MAX_BROWSER_SHARE = 1e-4  # fp32 bytes a WebAssembly build may flip, each by one level


def _counts(jobs: list[dict[str, Any]]) -> tuple[int, int, int]:
    return (sum(j["images"] for j in jobs), sum(j["bytes"] for j in jobs),
            sum(j["differing_bytes"] for j in jobs))


def _check_report(report: dict[str, Any], cases: dict[str, Any], reader: str) -> None:
    """Every golden check passed; Node: 0 differing bytes in every job (the same ONNX Runtime
    kernels as Python's, another build); browser (WebAssembly kernels, no FMA): the fp32 jobs
    flip at most MAX_BROWSER_SHARE of their bytes, each by one level (floats within ~1e-7
    that straddle a rounding boundary of the uint8 rule); its fp16/int8 counts are reported."""
    assert "error" not in report, report
    results = report["results"]
    assert [r["bundle"] for r in results] == [b["name"] for b in cases["bundles"]]
    lines = [f"\n{reader}: bytes against the Python runtime (differing / total)"]
    for r, c in zip(results, cases["bundles"]):
        assert r["goldens"]["passed"], (r["bundle"], r["goldens"])
        names = [job["name"] for job in c["jobs"]]
        assert [job["name"] for job in r["jobs"]] == names
        golden_jobs = [name for name in names if name.startswith("golden set")]
        if c["format"] == "onnx":  # every golden set's own latents are a job too
            assert len(r["goldens"]["sets"]) == len(golden_jobs), (names, r["goldens"]["sets"])
        for j in r["jobs"]:
            lines.append(f"  {r['bundle']:10} {j['name']:37} {j['differing_bytes']:>6} / "
                         f"{j['bytes']:>8,} bytes, {j['differing_images']:>4} / {j['images']:>5} "
                         f"images, max {j['max_level_diff']} level ({j['seconds']:.2f} s)")
            if reader == "node":
                assert j["differing_bytes"] == 0 and not j["attempts_differ"], (r["bundle"], j)
            elif j["variant"] == "fp32" and not j["attempts_differ"]:
                assert j["max_level_diff"] <= 1, (r["bundle"], j)
                assert j["differing_bytes"] <= MAX_BROWSER_SHARE * j["bytes"], (r["bundle"], j)
    jobs = [j for r in results for j in r["jobs"]]
    for what, subset in (("all", jobs), ("fp32", [j for j in jobs if j["variant"] == "fp32"])):
        images, total, differing = _counts(subset)
        lines.append(f"  {what} jobs: {differing:,} of {total:,} bytes differ ({images:,} images)")
    print("\n".join(lines))
    fp32 = [j for r in results if r["format"] == "onnx" for j in r["jobs"]
            if j["name"] == f"fp32 {cases['pairs']} pairs"]
    assert len(fp32) == 4 and all(j["images"] == cases["pairs"] for j in fp32)  # per family


def test_package_tests_pass_in_a_fresh_folder(js_install: Path, same_bytes_cases: dict[str, Any],
                                              tmp_path: Path, run_cmd: Any) -> None:
    """`node --test` of js/test against the installed tarball: the unit tests, and the
    goldens and Python's bytes of every case (one batched run per job)."""
    report = tmp_path / "node.json"
    tests = sorted(str(p.relative_to(js_install)) for p in (js_install / "test").glob("*.test.js"))
    assert tests == ["test/bundles.test.js", "test/unit.test.js"]
    done = run_cmd(["node", "--test", *tests], js_install, timeout=1200,
               env={**os.environ, "EDGEGEN_TEST_CASES": str(same_bytes_cases["file"]),
                    "EDGEGEN_TEST_BUNDLES": str(same_bytes_cases["file"].parent / "bundles"),
                    "EDGEGEN_TEST_REPORT": str(report)})
    assert "# fail 0" in done.stdout and "# skipped 0" in done.stdout, done.stdout[-2000:]
    _check_report(json.loads(report.read_text()), same_bytes_cases["cases"], "node")


def test_package_tests_pass_in_headless_chromium(js_install: Path,
                                                 same_bytes_cases: dict[str, Any],
                                                 open_package_page: Any) -> None:
    """The same cases in a page that imports the installed package without a bundler (an
    import map) and runs onnxruntime-web's WebAssembly; every file fetched is hashed."""
    report = open_package_page(js_install, "test/browser/index.html",
                               same_bytes_cases["bundles"],
                               {"cases.json": same_bytes_cases["file"]}, timeout=900)
    _check_report(report, same_bytes_cases["cases"], "browser")


def test_declarations_type_check_a_consumer(js_install: Path, js_dev: Path, run_cmd: Any) -> None:
    """`tsc --noEmit` of test/types/consumer.ts against the installed package; its
    @ts-expect-error lines make the check fail if the declarations were too loose."""
    tsc = js_dev / "node_modules" / "typescript" / "bin" / "tsc"
    run_cmd(["node", tsc, "-p", "test/types/tsconfig.json"], js_install)
    broken = js_install / "test" / "types" / "broken.ts"
    broken.write_text('import { loadBundle } from "edgegen-runtime";\n'
                      'const g = await loadBundle("b");\n'
                      'const n: number = await g.generate([7], { seed: 42 });\n')
    cfg = json.loads((js_install / "test" / "types" / "tsconfig.json").read_text())
    cfg["files"] = ["broken.ts"]
    (js_install / "test" / "types" / "tsconfig.broken.json").write_text(json.dumps(cfg))
    done = subprocess.run(["node", str(tsc), "-p", "test/types/tsconfig.broken.json"],
                          cwd=js_install, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "Uint8Array" in done.stdout, done.stdout


def test_npx_bench_writes_what_edgegen_bench_reads(js_install: Path, tiny_bundle: Path,
                                                   tmp_path: Path, run_cmd: Any) -> None:
    """`edgegen-runtime bench` (the package's bin) on the device, read back by the toolchain's
    `edgegen bench --from-json` beside a Python runtime report of the same bundle."""
    from edgegen.cli.app import app
    from edgegen.runtime.bench import main as python_bench

    node_json, py_json = tmp_path / "node.json", tmp_path / "python.json"
    run_cmd(["node", "node_modules/edgegen-runtime/bin/edgegen-runtime.js", "bench", tiny_bundle,
         "--batch", "1,4", "--iters", "4", "--rounds", "2", "--warmup-iters", "2",
         "--warmup-s", "0", "--noise-window", "0", "--json", node_json], js_install)
    assert python_bench([str(tiny_bundle), "--batch", "1,4", "--iters", "4", "--rounds", "2",
                         "--warmup-iters", "2", "--warmup-s", "0", "--noise-window", "0",
                         "--json", str(py_json)]) == 0
    node = json.loads(node_json.read_text())
    assert node["source"] == "edgegen-runtime bench (node)" and node["passed"]
    assert {(r["variant"], r["batch"]) for r in node["results"]} \
        == {(v, b) for v in ("fp32", "fp16", "int8") for b in (1, 4)}
    assert all(r["latency"]["count"] == 4 and r["warmup_iters"] >= 2 for r in node["results"])
    result = CliRunner().invoke(app, ["bench", "--from-json", str(py_json),
                                      "--from-json", str(node_json)])
    assert result.exit_code == 0, result.output
    assert "edgegen-runtime bench (node)" in result.output
    assert "edgegen-runtime bench (python)" in result.output


def test_installed_cli_refuses_a_changed_bundle(js_install: Path, tiny_bundle: Path,
                                                tmp_path: Path) -> None:
    """The packed bin checks before it runs: a flipped byte in model.onnx is a BundleError
    (exit 2) and nothing is written."""
    root = Path(shutil.copytree(tiny_bundle, tmp_path / "b"))
    data = bytearray((root / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 1
    (root / "model.onnx").write_bytes(bytes(data))
    done = subprocess.run(["node", "node_modules/edgegen-runtime/bin/edgegen-runtime.js",
                           "generate", str(root), "7", "42", str(tmp_path / "x.png")],
                          cwd=js_install, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "model.onnx has sha256" in done.stderr, done.stderr
    assert not (tmp_path / "x.png").exists()


def test_ort_format_needs_its_section(js_install: Path, tiny_bundle: Path) -> None:
    done = subprocess.run(["node", "node_modules/edgegen-runtime/bin/edgegen-runtime.js",
                           "check", str(tiny_bundle), "--format", "ort"],
                          cwd=js_install, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no ORT-format models" in done.stderr, done.stderr


def test_both_benches_time_the_ort_files(js_install: Path, ort_bundle: Path,
                                         tmp_path: Path, run_cmd: Any) -> None:
    """`--format ort`: the Python and the Node on-device benches run the manifest's .ort files."""
    from edgegen.runtime.bench import main as python_bench

    quick = ["--batch", "2", "--iters", "3", "--rounds", "1", "--warmup-iters", "1",
             "--warmup-s", "0", "--noise-window", "0", "--format", "ort"]
    py_json, node_json = tmp_path / "python.json", tmp_path / "node.json"
    assert python_bench([str(ort_bundle), *quick, "--json", str(py_json)]) == 0
    run_cmd(["node", "node_modules/edgegen-runtime/bin/edgegen-runtime.js", "bench", ort_bundle,
         *quick, "--json", node_json], js_install)
    models = json.loads((ort_bundle / "manifest.json").read_text())["ort_format"]["models"]
    for path in (py_json, node_json):
        results = json.loads(path.read_text())["results"]
        assert {r["settings"]["model"] for r in results} \
            == {models[f] for f in ("model.onnx", "model.fp16.onnx", "model.int8.onnx")}
        assert all(r["settings"]["format"] == "ort" for r in results)
