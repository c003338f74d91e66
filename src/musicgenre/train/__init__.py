"""Training, evaluation and explanation of genre models."""
