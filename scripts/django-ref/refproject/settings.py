"""Minimal settings for the seed notifications app (shared/seed/notifications-app.md), for benchmarks."""
import os
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "compare-django-secret-key-0123456789abcdef")
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "daphne",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "channels",
    "notifications",
]
MIDDLEWARE = []
ROOT_URLCONF = "refproject.urls"
ASGI_APPLICATION = "refproject.asgi.application"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB", str(BASE_DIR / "ref.sqlite3")),
    }
}
# The seed's tutorial uses Redis in production; in-memory keeps the comparison to one process
# (set CHANNEL_LAYER=redis to use channels_redis's core layer on 127.0.0.1:6379).
if os.environ.get("CHANNEL_LAYER") == "redis":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
SIMPLE_JWT = {"ACCESS_TOKEN_LIFETIME": timedelta(minutes=30)}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PUBLISH_API_KEY = os.environ.get("PUBLISH_API_KEY", "compare-key")
