"""Data: GRIT JSONL records and images, and synthetic grounded data for the demo."""
