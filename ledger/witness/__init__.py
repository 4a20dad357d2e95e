"""A C2SP tlog-witness (``share-gateway witness serve``) and the log's witness client.

* ``ledger.witness.service``: the witness: verifies a log's checkpoint and a consistency
  proof from the last checkpoint it cosigned for that origin, refuses rollbacks and forks,
  and returns a timestamped cosignature/v1. Its state is one SQLite file of its own.
* ``ledger.witness.http``: its HTTP interface (``add-checkpoint``, monitoring ``checkpoint``).
* ``ledger.witness.client``: the log side: submit a checkpoint, parse the cosignature.
"""
