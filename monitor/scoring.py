"""The scoring contract: JSON Lines of {"id", "text"} in, one verdict per line out, in input order."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .classifier import Classifier, judge


class ScoreInputError(ValueError):
    """An input file for `weerbaar score` that cannot be scored; ERRORS name line and field."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


def read_score_input(path: str | Path) -> list[tuple[object, str]]:
    """Read and validate every line of a {"id", "text"} JSONL file; raise ScoreInputError listing all problems."""
    path = Path(path)
    items, errors = [], []
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                record = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                errors.append(f"{where}: not valid UTF-8 at byte {exc.start}")
                continue
            except json.JSONDecodeError as exc:
                errors.append(f"{where}: not valid JSON: {exc.msg} at column {exc.colno}")
                continue
            if not isinstance(record, dict):
                errors.append(f"{where}: expected a JSON object with fields 'id' and 'text'")
                continue
            if "id" not in record:
                errors.append(f"{where}: field 'id': missing")
            if not isinstance(record.get("text"), str):
                errors.append(f"{where}: field 'text': missing or not a string")
            if "id" in record and isinstance(record.get("text"), str):
                items.append((record["id"], record["text"]))
    if errors:
        raise ScoreInputError(errors)
    return items


def score_file(
    classifier: Classifier,
    in_path: str | Path,
    out_path: str | Path,
    thresholds: dict[str, float],
    chunk_size: int = 1024,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Score every line of IN_PATH into OUT_PATH; OUT_PATH appears only when all lines are scored.

    Texts go to the classifier CHUNK_SIZE at a time: it sorts each chunk by length into its own batches, so a larger
    chunk wastes less work on padding (scripts/benchmark.py measures both ways).
    """
    items = read_score_input(in_path)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for start in range(0, len(items), chunk_size):
                chunk = items[start : start + chunk_size]
                for (item_id, _), verdict in zip(chunk, judge(classifier, [t for _, t in chunk], thresholds)):
                    line = {
                        "id": item_id,
                        "scores": {k: round(v, 6) for k, v in verdict.scores.items()},
                        "labels": verdict.labels,
                        "flagged": verdict.flagged,
                        "model": verdict.model,
                    }
                    out.write(json.dumps(line, ensure_ascii=False) + "\n")
                if progress:
                    progress(len(chunk))
        os.replace(tmp_name, out_path)
    except BaseException:
        os.unlink(tmp_name)
        raise
    return len(items)
