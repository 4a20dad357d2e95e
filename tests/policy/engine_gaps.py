"""Print the engine-gap table of policies_rego/README.md: each construct on each engine.

Run: ``python tests/policy/engine_gaps.py``. One small policy per row, evaluated on regorus,
OPA's Go evaluator and (if installed; no longer a dependency) regopy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

os.environ.setdefault("RUST_BACKTRACE", "0")

import regorus
from opa_bindings import OpaEngine, OpaError, OpaUndefinedError

HEADER = "package gap\n\nimport rego.v1\n\nf(x) if x == 1\n\n"
INPUT = {"null_value": None}
ROWS = {
    "not f(input.missing)": "r if not f(input.missing)",
    "not input.missing in {1}": "r if not input.missing in {1}",
    "not 1 in input.missing": "r if not 1 in input.missing",
    "not input.missing == false": "r if not input.missing == false",
    "is_number(null)": "r := is_number(null)",
    "is_object(null)": "r := is_object(null)",
    "14 <= null": "r := 14 <= null",
    'concat(",", {"b", "a", "c"})': 'r := concat(",", {"b", "a", "c"})',
    'sprintf("%s", [null])': 'r := sprintf("%s", [null])',
    'object.get(null, "k", "d")': 'r := object.get(null, "k", "d")',
    'concat("", ["a", 1])': 'r := concat("", ["a", 1])',
    "some x in null": "r := [x | some x in input.null_value]",
    'some k, _ in {"x": 1}': 'r := [k | some k, _ in {"x": 1}]',
    "type_name(null)": "r := type_name(null)",
}


def _short(text: str) -> str:
    return " ".join(text.split())[:70]


def on_regorus(rule: str) -> str:
    engine = regorus.Engine()
    try:
        engine.add_policy("gap.rego", HEADER + rule)
        engine.set_input_json(json.dumps(INPUT))
        out = engine.eval_rule_as_json("data.gap.r")
    except Exception as e:
        return "error: " + _short(str(e).split("Stack backtrace")[0])
    return "undefined" if out == '"<undefined>"' else json.dumps(json.loads(out))


def on_opa(rule: str) -> str:
    engine = OpaEngine()
    try:
        engine.add_policy("gap.rego", HEADER + rule)
        return json.dumps(engine.eval_document("gap.r", INPUT))
    except OpaUndefinedError:
        return "undefined"
    except OpaError as e:
        return "error: " + _short(e.message)
    finally:
        engine.close()


def on_regopy(rule: str) -> str:
    try:
        import regopy
    except ImportError:
        return "n/a"
    try:
        interp = regopy.Interpreter()
        interp.add_module("gap.rego", HEADER + rule)
        interp.set_input(regopy.Input(INPUT))
        out = str(interp.query("data.gap.r")).strip()
    except Exception:
        return "error"
    if out == "undefined":
        return out
    return json.dumps(json.loads(out)["expressions"][0])


def main() -> None:
    engines: dict[str, Callable[[str], str]] = {
        "regorus": on_regorus,
        "OPA": on_opa,
        "regopy": on_regopy,
    }
    print("| construct | " + " | ".join(engines) + " |")
    print("|---" * (len(engines) + 1) + "|")
    for name, rule in ROWS.items():
        print(f"| `{name}` | " + " | ".join(f(rule) for f in engines.values()) + " |")


if __name__ == "__main__":
    main()
