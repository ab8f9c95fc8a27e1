"""Reading ``manifest.json`` safely: bounded, strict JSON, then the one JSON Schema.

A manifest is untrusted input until it has passed these checks, in this order:

1. size: at most ``MAX_BYTES`` (1 MiB; an edgegen manifest is ~40 KB);
2. nesting: at most ``MAX_DEPTH`` levels of arrays/objects, counted on the raw bytes *before*
   parsing, so a 200,000-deep ``[[[[…`` is a clean error and never a ``RecursionError``;
3. strict JSON: UTF-8, no duplicate keys (Python and JavaScript would silently keep the last
   one), no ``NaN``/``Infinity``, no number that overflows a double, no integer of more than
   ``MAX_INT_DIGITS`` digits;
4. the schema field: ``edgegen.bundle/1`` (a clear "upgrade edgegen" for another version);
5. ``bundle.schema.json`` (shipped beside this module; the Node and browser readers validate
   against the same file with ajv): the first violation is reported with its JSON path.

Only then does any other code read a field. ``jsonschema`` is imported on first use (it is the
runtime's third dependency, beside numpy and onnxruntime).
"""

from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path
from typing import Any

from edgegen.runtime.errors import BundleError

SCHEMA = "edgegen.bundle/1"
SCHEMA_FILE = Path(__file__).with_name("bundle.schema.json")
MAX_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_INT_DIGITS = 30

# A JSON string (quotes included) or one bracket: strings are skipped when counting depth.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def nesting_depth(data: bytes, limit: int = MAX_DEPTH) -> int:
    """The deepest nesting of arrays/objects in JSON text ``data``; stops counting (and returns
    ``limit + 1``) as soon as ``limit`` is exceeded. Brackets inside strings do not count."""
    depth = deepest = 0
    for match in _TOKENS.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return limit + 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} does not fit a double")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"integer of {len(text)} digits ({text[:20]}…)")
    return int(text)


def parse_manifest(data: bytes, where: str | Path = "manifest.json") -> dict[str, Any]:
    """``data`` (the bytes of a manifest) as a dict that follows the schema, or a BundleError
    that names ``where`` and says what is wrong (with the JSON path of a schema violation)."""
    if len(data) > MAX_BYTES:
        raise BundleError(f"{where} is {len(data):,} bytes; an edgegen manifest is at most "
                          f"{MAX_BYTES:,} — this is not a manifest edgegen wrote")
    if nesting_depth(data) > MAX_DEPTH:
        raise BundleError(f"{where} nests arrays/objects more than {MAX_DEPTH} deep; an edgegen "
                          "manifest never does — the file was tampered with")
    try:
        text = data.decode("utf-8")
        manifest = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_constant,
                              parse_float=_float, parse_int=_int)
    except UnicodeDecodeError as exc:
        raise BundleError(f"{where} is not UTF-8 ({exc.reason} at byte {exc.start}); re-export "
                          "the bundle") from None
    except ValueError as exc:  # JSONDecodeError, and the hooks above
        raise BundleError(f"{where} is not valid JSON ({str(exc)[:200]}); re-export the "
                          "bundle") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{where} holds a JSON {type(manifest).__name__}, not an object; "
                          "expected a manifest made by `edgegen export`")
    schema = manifest.get("schema")
    if schema != SCHEMA:
        raise BundleError(f"{where} has schema {str(schema)[:80]!r}; this edgegen reads "
                          f"{SCHEMA!r} — upgrade edgegen or re-export the bundle")
    validate(manifest, where)
    return manifest


@functools.lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The JSON Schema of ``edgegen.bundle/1`` (``bundle.schema.json``)."""
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    try:
        import jsonschema
    except ImportError as exc:  # a --no-deps install without it
        raise BundleError("the manifest validator needs jsonschema: `pip install jsonschema` "
                          "(edgegen.runtime depends on numpy, onnxruntime and jsonschema)"
                          ) from exc
    cls = jsonschema.validators.validator_for(schema())
    cls.check_schema(schema())
    return cls(schema())


def validate(manifest: Any, where: str | Path = "manifest.json") -> None:
    """A BundleError naming the JSON path of the first schema violation in ``manifest``."""
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator().iter_errors(manifest))
    if error is None:
        return
    path = error.json_path
    if error.validator == "pattern" and error.schema is schema()["$defs"]["relpath"]:
        what = (f"manifest path {str(error.instance)[:200]!r} at {path} leaves the bundle or is "
                "not a plain relative path (no leading '/', '..', '\\', drive letter or control "
                "character)")
    elif error.validator == "pattern" and error.parent is not None \
            and error.parent.validator == "propertyNames":
        what = (f"manifest path {str(error.instance)[:200]!r} under {path} leaves the bundle or "
                "is not a plain relative path")
    elif error.validator == "type":
        what = (f"{path} is {_json_type(error.instance)}, expected "
                f"{' or '.join(_as_list(error.validator_value))}")
    else:
        what = f"{path}: {_short(error.message)}"
    raise BundleError(f"{where} does not follow the {SCHEMA} schema — {what}; the manifest was "
                      "edited or damaged — re-export the bundle")


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "an integer", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _short(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[:limit] + "…"
