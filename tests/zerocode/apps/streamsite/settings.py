"""Settings of a one-app Django project with streamed and chunked endpoints."""

DEBUG = False
SECRET_KEY = "zero-code-tests-only"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "streamsite.urls"
MIDDLEWARE: list[str] = []
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, object] = {}
USE_TZ = True
