"""A small base for stage reports: dataclasses with ``passed`` and ``to_json()``."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any


def jsonable(obj: Any) -> Any:
    """Turn dataclasses, paths, numpy scalars/arrays and non-finite floats into JSON values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy scalar or array
        return jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


class Report:
    """Mixin for report dataclasses."""

    @property
    def passed(self) -> bool:  # overridden by reports that gate
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, **jsonable(self)}

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)
