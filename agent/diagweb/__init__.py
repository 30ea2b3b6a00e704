"""The technician's local diagnostics page (server, SVG charts, command-line client)."""
