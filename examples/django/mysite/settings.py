"""Settings for the example project (not for production)."""

import os

SECRET_KEY = "example-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "mysite.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
WSGI_APPLICATION = "mysite.wsgi.application"
ASGI_APPLICATION = "mysite.asgi.application"

if os.environ.get("PEEKAPI_PROGRAMMATIC"):
    # The programmatic variant: configure, then instrument with the PeekAPI hooks.
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    import peekapi_otel
    from peekapi_otel.hooks import instrumentor_kwargs

    peekapi_otel.configure()
    DjangoInstrumentor().instrument(**instrumentor_kwargs("django"))
