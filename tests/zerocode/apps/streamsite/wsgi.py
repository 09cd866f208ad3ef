"""The WSGI entry point of the streamsite project."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "streamsite.settings")
application = get_wsgi_application()
