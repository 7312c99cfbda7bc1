"""Django settings for Relor, read from the environment.

Every variable and its default is listed in the README. Relor's own knobs are
``RELOR_*`` settings, read by the code when used so that tests can override
them.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Export a long random SECRET_KEY, "
            "or set DEBUG=true for a local development run."
        )
    SECRET_KEY = "django-insecure-development-only-key"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "relor_site.apps.RelorAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_q",
    "workflows",
    "jobs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "relor_site.middleware.RequestGuardMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "relor_site.urls"
WSGI_APPLICATION = "relor_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def database_from_url(url: str) -> dict:
    config = dj_database_url.parse(url)
    application_name = os.environ.get("RELOR_DB_APPLICATION_NAME", "relor")

    if config["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets readers run beside the one writer, and IMMEDIATE takes the
        # write lock at BEGIN, so no transaction fails upgrading a read lock.
        config["OPTIONS"] = {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    else:
        config["CONN_MAX_AGE"] = int(os.environ.get("CONN_MAX_AGE", "60"))
        config["CONN_HEALTH_CHECKS"] = True
        config["OPTIONS"] = {"application_name": application_name, "connect_timeout": 5}
    return config


DATABASES = {
    "default": database_from_url(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'relor.sqlite3'}")
    )
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"

# Django rejects bodies over this size when it reads them. The middleware
# returns 413 before that, from the Content-Length header.
RELOR_MAX_BODY_BYTES = int(os.environ.get("RELOR_MAX_BODY_BYTES", 1024 * 1024))
DATA_UPLOAD_MAX_MEMORY_SIZE = RELOR_MAX_BODY_BYTES

RELOR_MAX_PAYLOAD_BYTES = int(os.environ.get("RELOR_MAX_PAYLOAD_BYTES", 256 * 1024))
RELOR_MAX_NAME_LENGTH = int(os.environ.get("RELOR_MAX_NAME_LENGTH", 100))
RELOR_MAX_CLAIM_WAIT_SECONDS = float(os.environ.get("RELOR_MAX_CLAIM_WAIT_SECONDS", 30))
RELOR_MAX_CLAIM_JOBS = int(os.environ.get("RELOR_MAX_CLAIM_JOBS", 100))
# Each parked long poll occupies one server thread, so this must stay below the
# threads of one API process, leaving threads for completions and heartbeats.
RELOR_MAX_PARKED_POLLS = int(os.environ.get("RELOR_MAX_PARKED_POLLS", 16))
RELOR_POLL_INTERVAL_SECONDS = float(os.environ.get("RELOR_POLL_INTERVAL_SECONDS", 0.25))
RELOR_SCHEDULER_BATCH_SIZE = int(os.environ.get("RELOR_SCHEDULER_BATCH_SIZE", 100))
RELOR_SCHEDULER_INTERVAL_SECONDS = float(
    os.environ.get("RELOR_SCHEDULER_INTERVAL_SECONDS", 1.0)
)
RELOR_DB_RETRY_AFTER_SECONDS = int(os.environ.get("RELOR_DB_RETRY_AFTER_SECONDS", 5))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "relor_site.authentication.ThrottledTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["relor_site.parsers.SafeJSONParser"],
    "EXCEPTION_HANDLER": "relor_site.api_errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 100,
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_RATES": {
        "claim": os.environ.get("RELOR_CLAIM_RATE", "1200/min"),
    },
}

# Failed token authentications one client address may make per minute
# before it gets 429.
RELOR_MAX_AUTH_FAILURES_PER_MINUTE = int(
    os.environ.get("RELOR_MAX_AUTH_FAILURES_PER_MINUTE", 30)
)

# Behind HTTPS (set RELOR_HTTPS=true) cookies are secure and HTTP redirects
# to HTTPS; the local demo serves plain HTTP on 127.0.0.1 and leaves it off.
RELOR_HTTPS = env_bool("RELOR_HTTPS", False)
SECURE_SSL_REDIRECT = RELOR_HTTPS
SESSION_COOKIE_SECURE = RELOR_HTTPS
CSRF_COOKIE_SECURE = RELOR_HTTPS
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", 31536000 if RELOR_HTTPS else 0))
SECURE_HSTS_INCLUDE_SUBDOMAINS = RELOR_HTTPS
SECURE_HSTS_PRELOAD = RELOR_HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if RELOR_HTTPS else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

SPECTACULAR_SETTINGS = {
    "TITLE": "Relor API",
    "DESCRIPTION": "Worker and workflow control API of the Relor orchestrator.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

# django-q2 runs Relor's own background duties with the database as broker.
Q_CLUSTER = {
    "name": "relor",
    "orm": "default",
    "workers": 1,
    "timeout": 60,
    "retry": 120,
    "max_attempts": 5,
    "catch_up": False,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("RELOR_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
    },
}

# Recipients of notices about workflows that need an operator. Empty values
# disable that channel.
RELOR_ATTENTION_WEBHOOK_URL = os.environ.get("RELOR_ATTENTION_WEBHOOK_URL", "")
RELOR_ATTENTION_EMAILS = env_list("RELOR_ATTENTION_EMAILS", "")
RELOR_RETENTION_DAYS = int(os.environ.get("RELOR_RETENTION_DAYS", 30))

EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", 25))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "relor@localhost")
