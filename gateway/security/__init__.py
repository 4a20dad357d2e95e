"""Who is calling and what they may do: authentication, roles, per-RPC authorization."""
