"""Feature store: entities, feature sets, point-in-time training sets (a later release)."""
