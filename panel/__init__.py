# Load the Celery app with Django so that @shared_task and on_commit kicks use it.
from panel.celery import app as celery_app

__all__ = ["celery_app"]
