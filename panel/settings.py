"""Settings for the panel: one file, read from the environment (and an optional .env).

Development defaults work with nothing configured. With DEBUG off the secrets below are
required, and start-up stops with a message naming what is missing.
"""

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import django_stubs_ext
import environ
from django.core.exceptions import ImproperlyConfigured

# Lets classes like ModelAdmin[Provider] be subscripted at run time, as mypy wants them.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG: bool = env.bool("DEBUG", default=True)

# The embedded PostgreSQL that `make run` starts listens here (see panel/devdb.py).
DEV_DATABASE_URL = "postgres://postgres@127.0.0.1:54329/panel"
# Fixed keys so a development checkout works at once; never valid in production.
_DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me-0123456789abcdefghijklmnop"  # noqa: S105
_DEV_FIELD_ENCRYPTION_KEY = "ZGV2LW9ubHktZmllbGQta2V5LWRvLW5vdC11c2UhISE="


def _required(name: str, dev_default: str) -> str:
    """A secret that development may default but production must set."""
    value: str = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(
        f"{name} must be set when DEBUG is off (see the environment table in README.md)."
    )


SECRET_KEY = _required("SECRET_KEY", _DEV_SECRET_KEY)
# Comma-separated Fernet keys: the first encrypts, all decrypt (so keys can be rotated).
FIELD_ENCRYPTION_KEYS: list[str] = _required(
    "FIELD_ENCRYPTION_KEY", _DEV_FIELD_ENCRYPTION_KEY
).split(",")
DATABASES = {"default": env.db_url_config(_required("DATABASE_URL", DEV_DATABASE_URL))}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

ALLOWED_HOSTS: list[str] = env.list(
    "ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

PANEL_NAME: str = env.str("PANEL_NAME", default="SMM Reseller Panel")
PANEL_CURRENCY: str = env.str("PANEL_CURRENCY", default="USD")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "csp",
    "django_htmx",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "axes",
    "panel",
    "providers",
    "orders",
    "payments",
    "support",
    "desk",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # API v2 calls are answered here, past the page middleware below (orders/api.py).
    "orders.api.ApiV2Middleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # Shows every time in the customer's own time zone (their profile), after authentication.
    "panel.accounts.TimeZoneMiddleware",
    # Staff pass the desk's second factor before the Django admin too (STAFF_REQUIRE_MFA).
    "desk.access.admin_second_factor",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, so that it turns a login refused by the lock-out into the locked-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "panel.urls"
WSGI_APPLICATION = "panel.wsgi.application"

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
                "panel.views.panel_context",
                "desk.access.desk_context",
            ],
        },
    },
]

AUTH_USER_MODEL = "panel.User"
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out account before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    # Log in by username or email (allauth), and the admin's own login page.
    "allauth.account.auth_backends.AuthenticationBackend",
]

# --- accounts (django-allauth, panel/accounts.py) ----------------------------------------------
# Anybody may sign up unless this is off (panel.accounts.AccountAdapter.is_open_for_signup).
SIGNUP_ENABLED: bool = env.bool("SIGNUP_ENABLED", default=True)
ACCOUNT_ADAPTER = "panel.accounts.AccountAdapter"
ACCOUNT_SIGNUP_FORM_CLASS = "panel.accounts.SignupForm"  # adds the required terms box
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_EMAIL_VERIFICATION_BY_CODE_ENABLED = False  # a link in the mail
ACCOUNT_CONFIRM_EMAIL_ON_GET = False  # a click on the page confirms, not a mail scanner's GET
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = False
ACCOUNT_EMAIL_CONFIRMATION_AUTHENTICATED_REDIRECT_URL = "profile"  # after an email change
# One address per customer; a new one replaces it only once verified (allauth's change flow).
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_EMAIL_NOTIFICATIONS = True  # tell the old address about a password or email change
ACCOUNT_EMAIL_SUBJECT_PREFIX = f"[{PANEL_NAME}] "
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_SESSION_REMEMBER = None  # the login form offers "Remember me"
ACCOUNT_RATE_LIMITS = {
    # Password reset mails: per address and per client address (both from the environment).
    "reset_password": env.str("PASSWORD_RESET_RATE_LIMIT", default="20/m/ip,3/h/key"),
    "reset_password_from_key": "20/m/ip",
    # Failed logins are counted per account by django-axes below; allauth's own counter
    # (5 per 5 minutes per typed login) would pre-empt it with a different message.
    "login_failed": None,
}

# --- the staff desk's second factor (allauth.mfa, desk/access.py) -----------------------------
# Staff reach /staff/ only after a TOTP code in the same session; one without an authenticator
# app is sent to set one up first. On wherever DEBUG is off.
STAFF_REQUIRE_MFA: bool = env.bool("STAFF_REQUIRE_MFA", default=not DEBUG)
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
# The desk's alerts page warns when this many orders and refills wait for staff.
DESK_ATTENTION_ALERT: int = env.int("DESK_ATTENTION_ALERT", default=20)
MFA_TOTP_ISSUER = PANEL_NAME
# A code of the period before or after is accepted too: phones' clocks drift by seconds.
MFA_TOTP_TOLERANCE = 1

# --- login lock-out (django-axes) --------------------------------------------------------------
# Per account (whatever the attacker's address): AXES_FAILURE_LIMIT wrong passwords lock the
# account for AXES_COOLOFF_MINUTES after the last one counted; attempts while locked are refused
# unchecked and do not extend the lock. So an account sees at most
# AXES_FAILURE_LIMIT × ceil(60 / AXES_COOLOFF_MINUTES) password checks an hour: 10 by default.
AXES_FAILURE_LIMIT: int = env.int("AXES_FAILURE_LIMIT", default=10)
AXES_COOLOFF_MINUTES: int = env.int("AXES_COOLOFF_MINUTES", default=60)
MAX_LOGIN_GUESSES_PER_HOUR = 100
if AXES_FAILURE_LIMIT < 1 or AXES_COOLOFF_MINUTES < 1 or (
        AXES_FAILURE_LIMIT * -(-60 // AXES_COOLOFF_MINUTES) > MAX_LOGIN_GUESSES_PER_HOUR):
    raise ImproperlyConfigured(
        "AXES_FAILURE_LIMIT × ceil(60 / AXES_COOLOFF_MINUTES) must be between 1 and "
        f"{MAX_LOGIN_GUESSES_PER_HOUR}: at most that many password guesses an hour per account."
    )
AXES_COOLOFF_TIME = timedelta(minutes=AXES_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username"]
# axes warns that this ignores addresses: on purpose. The bound is per account whatever the
# addresses, and a lock per address would lock out every customer behind one shared address.
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# A successful login does not clear the count: else an owner who logs in often would hand an
# attacker a fresh AXES_FAILURE_LIMIT each time, and the hourly bound would not hold.
AXES_RESET_ON_SUCCESS = False
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
# "alice" and "alice@example.com" are one account, so they share one counter.
AXES_USERNAME_CALLABLE = "panel.accounts.axes_account_key"
AXES_LOCKOUT_CALLABLE = "panel.accounts.locked_out"
AXES_VERBOSE = False
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
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
if DEBUG:
    # whitenoise warns at every start when the collectstatic target is missing in development.
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL: str = env.str("DEFAULT_FROM_EMAIL", default="panel@localhost")

# Redis carries Celery's messages and the shared cache (rate limits). Without it the demo
# falls back to kombu's filesystem transport, which needs no server.
REDIS_URL: str = env.str("REDIS_URL", default="")
# An explicit CELERY_BROKER_URL wins; `filesystem:///some/dir` keeps the filesystem queue in
# that folder instead of var/celery-queue (the end-to-end tests give their worker a private one).
CELERY_BROKER_URL: str = env.str("CELERY_BROKER_URL", default="") or REDIS_URL or "filesystem://"
# Publishing tries a Redis broker once: an on-commit kick to a broker that is down is logged
# and dropped at once (the sweep finds the row), instead of holding the API request for
# seconds of retries. The worker's own connection retries as usual (its own settings).
REDIS_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"max_retries": 0}
if CELERY_BROKER_URL.startswith("filesystem:"):
    _queue_dir = Path(urlsplit(CELERY_BROKER_URL).path or BASE_DIR / "var" / "celery-queue")
    _queue_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(_queue_dir),
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
        # The worker looks for new messages this often (kombu's default is 1 s): a sweep
        # expires after 0.9 of its interval, so with SWEEP_INTERVAL=1 the default loses most.
        "polling_interval": 0.1,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = REDIS_BROKER_TRANSPORT_OPTIONS
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER: bool = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

# Pricing (orders/pricing.py): markups in percent over the upstream's cost.
DEFAULT_MARKUP_PERCENT = Decimal(env.str("DEFAULT_MARKUP_PERCENT", default="30"))
# No price may fall below cost plus this margin, whatever discounts or custom rates say.
MIN_MARGIN_PERCENT = Decimal(env.str("MIN_MARGIN_PERCENT", default="5"))
# What the margin guard does when a cost rise leaves a service below that floor.
MARGIN_GUARD_ACTION: str = env.str("MARGIN_GUARD_ACTION", default="reprice")
if MARGIN_GUARD_ACTION not in ("reprice", "disable"):
    raise ImproperlyConfigured("MARGIN_GUARD_ACTION must be 'reprice' or 'disable'")

# The panel's own API v2 (orders/api.py): calls per minute, shared across web workers.
API_RATE_LIMIT_PER_KEY: int = env.int("API_RATE_LIMIT_PER_KEY", default=600)
API_RATE_LIMIT_PER_IP: int = env.int("API_RATE_LIMIT_PER_IP", default=1200)
# Reverse proxies in front of the web (the compose setup's TLS proxy is one): client
# addresses for the per-address limit are read from X-Forwarded-For through that many.
TRUSTED_PROXY_COUNT: int = env.int("TRUSTED_PROXY_COUNT", default=0)
# allauth's rate limits and axes' records read client addresses through the same proxies.
ALLAUTH_TRUSTED_PROXY_COUNT = TRUSTED_PROXY_COUNT
AXES_IPWARE_PROXY_COUNT = TRUSTED_PROXY_COUNT or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR") if TRUSTED_PROXY_COUNT else ("REMOTE_ADDR",))

# Seconds a web process keeps a service and its routes for placing orders (orders/placing.py).
CATALOG_CACHE_SECONDS: float = env.float("CATALOG_CACHE_SECONDS", default=5.0)

# The new posts a subscription sent without `posts` covers and is charged for up front
# (orders/params.py): the protocol reads a missing `posts` as unlimited, which no up-front
# charge can bound. The undelivered share is refunded when it ends.
SUBSCRIPTION_DEFAULT_POSTS: int = env.int("SUBSCRIPTION_DEFAULT_POSTS", default=30)
if not 1 <= SUBSCRIPTION_DEFAULT_POSTS <= 10_000:
    raise ImproperlyConfigured("SUBSCRIPTION_DEFAULT_POSTS must be between 1 and 10000")

# Upstream providers (providers/client.py).
PROVIDER_CONNECT_TIMEOUT: float = env.float("PROVIDER_CONNECT_TIMEOUT", default=5.0)
PROVIDER_READ_TIMEOUT: float = env.float("PROVIDER_READ_TIMEOUT", default=30.0)
PROVIDER_READ_RETRIES: int = env.int("PROVIDER_READ_RETRIES", default=2)
# Loopback and private upstreams are refused in production; the sandbox needs them in dev.
PROVIDER_ALLOW_PRIVATE_ADDRESSES: bool = env.bool(
    "PROVIDER_ALLOW_PRIVATE_ADDRESSES", default=DEBUG
)
# Orders are checked about every tenth of their age, within these bounds (seconds).
POLL_FIRST_DELAY: float = env.float("POLL_FIRST_DELAY", default=60.0)
POLL_MAX_DELAY: float = env.float("POLL_MAX_DELAY", default=3600.0)
# A status request about many ids should answer within this many seconds: the ids per
# request adapt to each provider's latency (halved after a read timeout, grown back after
# fast replies, within 1..100), well under PROVIDER_READ_TIMEOUT.
STATUS_BATCH_TARGET_SECONDS: float = env.float("STATUS_BATCH_TARGET_SECONDS", default=5.0)
# An order whose upstream charge (or the units it says it took) is below this percent of
# the cost snapshot (of the units sold) is flagged for staff on the first status showing it.
UPSTREAM_CHARGE_FLAG_PERCENT: int = env.int("UPSTREAM_CHARGE_FLAG_PERCENT", default=50)
if not 0 <= UPSTREAM_CHARGE_FLAG_PERCENT <= 100:
    raise ImproperlyConfigured("UPSTREAM_CHARGE_FLAG_PERCENT must be between 0 and 100")
# Status checks that failed for one order alone, in a row, before it is flagged for staff.
POLL_FLAG_AFTER_FAILURES: int = env.int("POLL_FLAG_AFTER_FAILURES", default=5)
# Sends of a cancel or a refill the upstream definitely refused, before giving up (the
# customer then sees the refusal); retried after 2, 4, 8… minutes.
CANCEL_MAX_ATTEMPTS: int = env.int("CANCEL_MAX_ATTEMPTS", default=4)
REFILL_MAX_ATTEMPTS: int = env.int("REFILL_MAX_ATTEMPTS", default=4)
# Watchdog: a send that never finished, and live orders that stopped moving.
# A send unfinished past the longest it can take (the batch's time plus one request's
# timeouts, orders/watchdog.py: submitting_threshold) is parked; this overrides that, in seconds.
WATCHDOG_SUBMITTING_SECONDS: float | None = env.float("WATCHDOG_SUBMITTING_SECONDS", default=None)
WATCHDOG_REFILL_SUBMITTING_MINUTES: int = env.int("WATCHDOG_REFILL_SUBMITTING_MINUTES",
                                                  default=10)
WATCHDOG_QUEUED_MINUTES: int = env.int("WATCHDOG_QUEUED_MINUTES", default=30)
WATCHDOG_STALLED_HOURS: int = env.int("WATCHDOG_STALLED_HOURS", default=24)
# Sending (orders/dispatch.py): a batch stops claiming time after this many seconds and puts
# the rest back, so no claim grows old while a slow upstream answers the ones before it.
DISPATCH_BATCH_SECONDS: float = env.float("DISPATCH_BATCH_SECONDS", default=60.0)
# An order that was never sent (a broken provider key, say) is tried again after this long;
# a temporary refusal (HTTP 429, our balance upstream too low) backs off from it, doubling
# each time up to the maximum.
DISPATCH_RETRY_SECONDS: float = env.float("DISPATCH_RETRY_SECONDS", default=60.0)
DISPATCH_MAX_BACKOFF_SECONDS: float = env.float("DISPATCH_MAX_BACKOFF_SECONDS", default=3600.0)
# A refill sent upstream and without a status change this long is flagged (refills drip in
# over days, so longer than an order).
WATCHDOG_REFILL_STALLED_HOURS: int = env.int("WATCHDOG_REFILL_STALLED_HOURS", default=72)
# How often beat sweeps for due work (sending, polling) in seconds.
SWEEP_INTERVAL: int = env.int("SWEEP_INTERVAL", default=15)
CATALOG_SYNC_INTERVAL: int = env.int("CATALOG_SYNC_INTERVAL", default=3600)
BALANCE_CHECK_INTERVAL: int = env.int("BALANCE_CHECK_INTERVAL", default=900)
SANDBOX_URL: str = env.str("SANDBOX_URL", default="http://127.0.0.1:8765/api/v2")
# The demo sandbox's store, shared by `seed_demo` and the Procfile's sandbox.
SANDBOX_DB: str = env.str("SANDBOX_DB", default=str(BASE_DIR / "var" / "sandbox.sqlite3"))

# Payments (payments/gateways/). A gateway whose secrets are unset is simply not offered, so a
# panel that does not use Stripe needs no Stripe key; the secrets never live in the database.
STRIPE_SECRET_KEY: str = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET: str = env.str("STRIPE_WEBHOOK_SECRET", default="")
# Stripe's own default (300 s): a signed notification older than this is refused as a replay.
STRIPE_WEBHOOK_TOLERANCE: int = env.int("STRIPE_WEBHOOK_TOLERANCE", default=300)
STRIPE_API_BASE: str = env.str("STRIPE_API_BASE", default="https://api.stripe.com")
NOWPAYMENTS_API_KEY: str = env.str("NOWPAYMENTS_API_KEY", default="")
NOWPAYMENTS_IPN_SECRET: str = env.str("NOWPAYMENTS_IPN_SECRET", default="")
NOWPAYMENTS_API_URL: str = env.str("NOWPAYMENTS_API_URL", default="https://api.nowpayments.io/v1")
PAYMENTS_CONNECT_TIMEOUT: float = env.float("PAYMENTS_CONNECT_TIMEOUT", default=5.0)
PAYMENTS_READ_TIMEOUT: float = env.float("PAYMENTS_READ_TIMEOUT", default=20.0)
# An open gateway payment with no news this long is expired (Stripe's sessions last 24 h).
PAYMENTS_EXPIRE_HOURS: int = env.int("PAYMENTS_EXPIRE_HOURS", default=48)
# The demo gateway: a hosted-checkout page inside the panel that pays or fails at a click and
# then notifies the webhook, signed, over HTTP. Never on in production unless asked for.
PAYMENTS_DEMO_ENABLED: bool = env.bool("PAYMENTS_DEMO_ENABLED", default=DEBUG)
# Required only where the demo is on outside DEBUG: its checkout page must not be forgeable.
PAYMENTS_DEMO_SECRET: str = (_required("PAYMENTS_DEMO_SECRET", "demo-gateway-secret")
                             if PAYMENTS_DEMO_ENABLED else "")

# Production: HTTPS terminated by a proxy that sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT: bool = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # container healthchecks speak plain HTTP
SESSION_COOKIE_SECURE: bool = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE: bool = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS: int = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS: bool = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD: bool = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    }
}

# GET /metrics (orders/metrics.py) answers only `Authorization: Bearer <METRICS_TOKEN>`;
# unset, it answers nobody.
METRICS_TOKEN: str = env.str("METRICS_TOKEN", default="")

# Unexpected exceptions (web, workers, beat) to Sentry when set; keys are scrubbed from every
# event before it leaves (panel/error_reports.py).
SENTRY_DSN: str = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    from panel.error_reports import init_sentry

    init_sentry(SENTRY_DSN, environment=env.str("SENTRY_ENVIRONMENT",
                                                default="development" if DEBUG else "production"),
                release=env.str("SENTRY_RELEASE", default=""))

# "plain" lines (key=value pairs after the logger's name) or "json" objects, one per line.
LOG_FORMAT: str = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured("LOG_FORMAT must be 'plain' or 'json'")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
                   "json": {"()": "panel.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
