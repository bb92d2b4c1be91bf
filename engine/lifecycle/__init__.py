"""The model lifecycle: training runs, retraining, challengers, comparison, promotion."""
