"""Operators, sign-in, supervisor approval, attendance, audit and the office's indicators (issue 9).

See docs/operators.md. Modules: ``registry`` (operator records and ZFM template slots),
``vault`` (encrypted template copies in the journal), ``pin`` (salted PIN hashes), ``signin``
(who is signed in, idle sign-out), ``approvals`` (supervisor approval rules), ``audit`` (the
who-did-what trail), ``attendance``, ``indicators``, ``csvreport`` and ``routes`` (station API).
"""
