"""Card printing: e-KTP rendering, print orders, the journaled print queue and blank-card stock."""
