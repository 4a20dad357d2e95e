"""``share-gateway policy``: run the Rego tests, show the revision, evaluate an input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gateway.errors import GatewayError
from gateway.settings import PolicySettings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Policy bundle tools.")

_DirOption = Annotated[
    Path | None,
    typer.Option("--dir", help="Policy directory (default: the configured policies_rego/)."),
]


def _dir(value: Path | None) -> Path:
    return value if value is not None else PolicySettings().dir


@app.command("test")
def test_cmd(
    dir: _DirOption = None,
    run: Annotated[
        str | None, typer.Option("--run", help="Only tests whose name contains this.")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print passing tests too.")
    ] = False,
    engine: Annotated[
        str, typer.Option("--engine", help="regorus (embedded) or opa (OPA's Go evaluator).")
    ] = "regorus",
) -> None:
    """Run every test_* rule of the *_test.rego files through the embedded engine or OPA."""
    from gateway.policy.rego_tests import RegoTestResult, run_tests, summary

    def report(r: RegoTestResult) -> None:
        if not r.passed:
            typer.echo(f"FAIL {r.name} ({r.file}): {r.detail}")
        elif verbose:
            typer.echo(f"PASS {r.name}")

    try:
        if engine not in ("regorus", "opa"):
            raise typer.BadParameter("must be regorus or opa", param_hint="--engine")
        results = run_tests(
            _dir(dir), match=run, on_result=report, engine="opa" if engine == "opa" else "regorus"
        )
    except GatewayError as e:
        typer.echo(f"error: {e.message}", err=True)
        raise typer.Exit(2) from e
    typer.echo(summary(results))
    if not results or any(not r.passed for r in results):
        raise typer.Exit(1)


@app.command("revision")
def revision_cmd(dir: _DirOption = None) -> None:
    """Print the revision (hash of the served policy and data files)."""
    from gateway.policy.bundle import compute_revision

    try:
        typer.echo(compute_revision(_dir(dir)))
    except GatewayError as e:
        typer.echo(f"error: {e.message}", err=True)
        raise typer.Exit(2) from e


@app.command("eval")
def eval_cmd(
    input: Annotated[Path, typer.Option("--input", "-i", help="JSON file: a contract-v1 input.")],
    dir: _DirOption = None,
) -> None:
    """Evaluate data.sharing.decision for an input with the embedded engine; print it as JSON."""
    from gateway.policy.embedded import EmbeddedEngine

    try:
        doc = json.loads(input.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        typer.echo(f"error: cannot read {input}: {e}", err=True)
        raise typer.Exit(2) from e
    try:
        decision = EmbeddedEngine(policy_dir=_dir(dir)).decide(doc)
    except GatewayError as e:
        typer.echo(f"error: {e.message}", err=True)
        raise typer.Exit(2) from e
    out = {"revision": decision.revision, **decision.comparable()}
    typer.echo(json.dumps(out, indent=2, ensure_ascii=False))
    if not decision.allow:
        raise typer.Exit(1)
