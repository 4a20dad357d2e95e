"""The auditor's web console (``share-gateway console``, ADR 0008).

A separate web process and an ordinary client of the gateway's AuditService over mTLS: it
holds no database credentials and no ledger key. Auditors log in with their bearer token;
every page that reveals entries is an AuditService read made with that token. The entry
page's inclusion proof and checkpoint signature are checked in the browser
(``static/verify.js``) with a verifier key the auditor entered, so the console server
itself need not be trusted.

Layout: ``client`` (AuditService over mTLS), ``sessions`` (cookies, CSRF, expiry),
``disclosures`` (filters, paging, export), ``tally`` and ``charts`` (pure counting and SVG),
``app`` (routes and pages), ``serving`` (uvicorn), ``templates/`` and ``static/``.
"""
