"""Partner data-sharing gateway: policy-checked disclosures with a write-ahead audit ledger.

Layout: ``server`` wires gRPC; ``services/`` implement the RPCs; ``policy/`` evaluates the Rego
policies (embedded engine or an OPA server); ``enforcement`` executes a decision's obligations
with pure functions; ``registry/`` holds partners, schemas and subject facts; ``security/``
authenticates callers and authorizes each RPC.
"""
