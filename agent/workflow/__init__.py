"""The enrollment workflow: biodata and NIK checks, the session state table, quality gates."""
