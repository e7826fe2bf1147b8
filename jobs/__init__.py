"""procrastinate tasks: dispatch of queued messages and upkeep. No HTTP here."""
