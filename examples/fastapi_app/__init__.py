"""A FastAPI chat service on one shared AsyncKafkaHistoryClient (see ``app.py``)."""
