"""Context capture: what on-call would otherwise collect by hand, recorded in the incident."""
