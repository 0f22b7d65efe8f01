"""Plain data shapes shared by every layer; no I/O lives here."""
