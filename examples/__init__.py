"""Runnable examples of aiokafka-history."""
