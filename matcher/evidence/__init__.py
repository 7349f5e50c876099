"""Evidence sources: each yields file tasks and outcomes for everything it finds."""
