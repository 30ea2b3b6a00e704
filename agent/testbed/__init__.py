"""Real helper processes for the demo and the tests (a local mosquitto, a link proxy)."""
