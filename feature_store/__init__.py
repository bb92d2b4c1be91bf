"""Feature store: entities, feature sets, point-in-time training sets (coming in a later release)."""
