"""``share-gateway policy``: run the Rego tests, show the revision, evaluate an input, build
an OPA bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.cli.connection import ConfigOpt, load_settings
from gateway.errors import GatewayError
from gateway.policy.decision import PolicyDecision

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Policy bundle tools.")

_DirOption = Annotated[
    Path | None,
    typer.Option("--dir", help="Policy directory (default: the configured policies_rego/)."),
]


def _dir(value: Path | None, config: Path | None = None) -> Path:
    return value if value is not None else load_settings(config).policy.dir


def contract_output(decision: PolicyDecision) -> dict[str, Any]:
    """The decision in the shape of ``data.sharing.decision`` (policies_rego/CONTRACT.md)."""
    comparable = decision.comparable()
    return {
        "allow": decision.allow,
        "reasons": [{"code": r.code, "message": r.message} for r in decision.reasons],
        "excluded": [
            {"ref": ref, "code": r.code, "message": r.message}
            for ref, reasons in sorted(decision.excluded.items())
            for r in reasons
        ],
        "obligations": comparable["obligations"],
        "subject_obligations": comparable["subject_obligations"],
        "consents": comparable["consents"],
        "cross_border": comparable["cross_border"],
        "subject_ref": comparable["subject_ref"],
    }


@app.command("test")
def test_cmd(
    dir: _DirOption = None,
    config: ConfigOpt = None,
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
            _dir(dir, config),
            match=run,
            on_result=report,
            engine="opa" if engine == "opa" else "regorus",
        )
    except GatewayError as e:
        typer.echo(f"error: {e.message}", err=True)
        raise typer.Exit(2) from e
    typer.echo(summary(results))
    if not results or any(not r.passed for r in results):
        raise typer.Exit(1)


@app.command("revision")
def revision_cmd(dir: _DirOption = None, config: ConfigOpt = None) -> None:
    """Print the revision (hash of the served policy and data files)."""
    from gateway.policy.bundle import compute_revision

    try:
        typer.echo(compute_revision(_dir(dir, config)))
    except GatewayError as e:
        typer.echo(f"error: {e.message}", err=True)
        raise typer.Exit(2) from e


@app.command("eval")
def eval_cmd(
    input: Annotated[
        Path,
        typer.Option(
            "--input", "-i", help="JSON file: a contract input (see docs/policy-input.json)."
        ),
    ],
    dir: _DirOption = None,
    config: ConfigOpt = None,
) -> None:
    """Evaluate data.sharing.decision for an input with the embedded engine.

    Prints the decision as JSON in the output shape of policies_rego/CONTRACT.md (the policy
    revision goes to stderr). Exits 0 if allowed, 1 if refused, 2 if unusable.
    """
    from gateway.policy.embedded import EmbeddedEngine

    try:
        doc = json.loads(input.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        typer.echo(f"error: cannot read {input}: {e}", err=True)
        raise typer.Exit(2) from e
    try:
        decision = EmbeddedEngine(policy_dir=_dir(dir, config)).decide(doc)
    except GatewayError as e:
        typer.echo(f"error: {e.message}", err=True)
        raise typer.Exit(2) from e
    typer.echo(f"policy revision {decision.revision}", err=True)
    typer.echo(json.dumps(contract_output(decision), indent=2, ensure_ascii=False))
    if not decision.allow:
        raise typer.Exit(1)


@app.command("build")
def build_cmd(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Archive to write (bundle.tar.gz).")
    ] = Path("bundle.tar.gz"),
    signing_key: Annotated[
        Path | None,
        typer.Option(
            "--signing-key", help="PEM private key (RS256, ES256) or HMAC secret file (HS256)."
        ),
    ] = None,
    signing_alg: Annotated[
        str, typer.Option("--signing-alg", help="RS256, ES256 or HS256.")
    ] = "RS256",
    key_id: Annotated[
        str | None, typer.Option("--key-id", help="keyid claim of the signature.")
    ] = None,
    dir: _DirOption = None,
    config: ConfigOpt = None,
) -> None:
    """Write the policy directory as an OPA bundle (.manifest with revision and roots).

    Signed with --signing-key (.signatures.json, OPA's bundle signing format). An OPA server
    runs it with `opa run --server --bundle bundle.tar.gz`; prints the revision.
    """
    from gateway.policy.bundle import load_bundle
    from gateway.policy.opa_bundle import write_archive

    try:
        key = signing_key.read_bytes() if signing_key is not None else None
    except OSError as e:
        typer.echo(f"error: cannot read {signing_key}: {e}", err=True)
        raise typer.Exit(2) from e
    try:
        bundle = load_bundle(_dir(dir, config))
        write_archive(bundle, output, signing_key=key, algorithm=signing_alg, key_id=key_id)
    except (GatewayError, OSError) as e:
        typer.echo(f"error: {getattr(e, 'message', e)}", err=True)
        raise typer.Exit(2) from e
    signed = f", signed {signing_alg}" if key is not None else ""
    typer.echo(f"{output}: revision {bundle.revision}{signed}")
