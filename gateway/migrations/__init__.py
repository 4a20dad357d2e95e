"""Alembic migrations of the gateway's database schema (ledger, registry, outbox tables).

Run through ``gateway.schema`` (``share-gateway db upgrade``), never with a bare ``alembic``
command: the environment gets its connection from ``gateway.schema``.
"""
