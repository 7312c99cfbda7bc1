"""Settings for the test suite: the project's settings with a test secret key."""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-not-for-production")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")

from relor_site.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# WhiteNoise warns on every request when the collected static folder is missing.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
