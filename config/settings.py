"""RigShift settings: one env-driven base with embedded defaults.

With no environment set, RigShift runs on SQLite, a filesystem Celery broker and the local payment
gateway. Production is switched on by environment variables (see README, "Configuration").
"""

from pathlib import Path

import django_stubs_ext
import environ
from django.core.exceptions import ImproperlyConfigured

from common.logging import logging_config

django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("RIGSHIFT_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()

# DJANGO_DEBUG (default on) is development mode: the embedded secret key, no HTTPS enforcement, plain logs, static
# files from the source folders. Django's own debug pages (URL pattern lists, tracebacks) are a separate switch,
# DJANGO_DEBUG_PAGES (default off, development mode only), so `make run` shows the styled 403/404/500 pages.
DEV_MODE = env.bool("DJANGO_DEBUG", default=True)
DEBUG = DEV_MODE and env.bool("DJANGO_DEBUG_PAGES", default=False)
_DEV_SECRET = "dev-insecure-secret-key-change-me-rigshift-0123456789abcdef"
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET if DEV_MODE else "")
if not SECRET_KEY or (not DEV_MODE and SECRET_KEY == _DEV_SECRET):
    raise ImproperlyConfigured("SECRET_KEY must be set when DJANGO_DEBUG=0")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served from our static files (pinned, no CDN)
    "django_htmx",
    "common",
    "notify",
    "marketplace",
    "billing",
    "financing",
    "broker",
    "demo",
    "simulator",
]

MIDDLEWARE = [
    "common.middleware.RequestContextMiddleware",  # request id, request metrics (first: times everything)
    "common.json_body.JsonBodyLimitMiddleware",  # a JSON body over the limit: 413 as JSON, before anything reads it
    "django.middleware.security.SecurityMiddleware",
    "common.middleware.SecurityHeadersMiddleware",  # Content-Security-Policy
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "common.ratelimit.PageRateLimitMiddleware",  # login/signup pages: 429 + Retry-After
    "common.lockout.LockoutMiddleware",  # locked accounts: 429 + Retry-After before the password check
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "common.db_unavailable.DatabaseUnavailableMiddleware",  # last: a lost DB connection → 503 + Retry-After
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker, beat) share the file: WAL, a busy timeout, and
    # BEGIN IMMEDIATE so that writers queue instead of failing on lock upgrades.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif env.bool("DB_POOL", default=not DEV_MODE):
    # Production: psycopg's connection pool (Django's `pool` option; psycopg-pool), one per process shared by
    # its threads; checked connections, no connect per request. Persistent connections and a pool exclude
    # each other, so CONN_MAX_AGE stays 0.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
        "max_size": env.int("DB_POOL_MAX_SIZE", default=8),
        "timeout": env.float("DB_POOL_TIMEOUT_S", default=10.0),
        "max_idle": 300,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# Celery: Redis when configured, otherwise kombu's filesystem transport (no server needed).
CELERY_FS_DIR = VAR_DIR / "celery"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"visibility_timeout": 3600}
else:
    for _sub in ("in", "processed", "control"):
        (CELERY_FS_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_FS_DIR / "in"),
        "data_folder_out": str(CELERY_FS_DIR / "in"),
        "processed_folder": str(CELERY_FS_DIR / "processed"),
        "control_folder": str(CELERY_FS_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.1,  # kombu's default (1 s) is most of a booking's wait for its match round
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {}
# Node liveness: mark nodes whose heartbeats stopped offline (failover listens), refresh reliability.
# Webhook deliveries whose back-off has run out are retried.
CELERY_BEAT_SCHEDULE["notify-webhooks-retry"] = {
    "task": "notify.tasks.webhooks_retry",
    "schedule": 30.0,
    "options": {"expires": 30},
}
CELERY_BEAT_SCHEDULE["marketplace-nodes-mark-offline"] = {
    "task": "marketplace.tasks.nodes_mark_offline",
    "schedule": 15.0,
    "options": {"expires": 15},
}
CELERY_BEAT_SCHEDULE["marketplace-nodes-reliability-refresh"] = {
    "task": "marketplace.tasks.nodes_reliability_refresh",
    "schedule": 300.0,
    "options": {"expires": 300},
}
CELERY_BEAT_SCHEDULE["marketplace-node-heartbeats-prune"] = {
    "task": "marketplace.tasks.node_heartbeats_prune",
    "schedule": 3600.0,
    "options": {"expires": 3600},
}
# Compute challenges: fail the unanswered ones; challenge idle nodes at random times (about
# RIGSHIFT_CHALLENGE_IDLE_PER_DAY times a day each). Size: "full" needs most of the claimed VRAM and ~20 s of a
# card of the claimed model; "small" (the default with DEBUG: demo market, simulator, tests) is answered by a CPU.
RIGSHIFT_CHALLENGE_SIZE = env.str("RIGSHIFT_CHALLENGE_SIZE", default="small" if DEV_MODE else "full")
RIGSHIFT_CHALLENGE_IDLE_PER_DAY = env.float("RIGSHIFT_CHALLENGE_IDLE_PER_DAY", default=2.0)
CELERY_BEAT_SCHEDULE["marketplace-challenges-expire"] = {
    "task": "marketplace.tasks.challenges_expire",
    "schedule": 60.0,
    "options": {"expires": 60},
}
CELERY_BEAT_SCHEDULE["broker-challenges-idle"] = {
    "task": "broker.tasks.challenges_idle",
    "schedule": 600.0,
    "options": {"expires": 600},
}
# Billing: settle metered usage every 30 s; pay providers out (weekly, or daily above the threshold).
CELERY_BEAT_SCHEDULE["billing-settle-usage"] = {
    "task": "billing.tasks.settle_usage",
    "schedule": 30.0,
    "options": {"expires": 30},
}
CELERY_BEAT_SCHEDULE["billing-payout-run"] = {
    "task": "billing.tasks.payout_run_task",
    "schedule": 3600.0,
    "options": {"expires": 3600},
}
CELERY_BEAT_SCHEDULE["billing-invoices-close-month"] = {
    "task": "billing.tasks.invoices_close_month_task",
    "schedule": 86400.0,
    "options": {"expires": 3600},
}
# Broker: a matching round every few seconds (bookings also trigger one within a second); expire leases.
CELERY_BEAT_SCHEDULE["broker-match-round"] = {
    "task": "broker.tasks.match_round",
    "schedule": 5.0,
    "args": ["default"],
    "options": {"expires": 5},
}
CELERY_BEAT_SCHEDULE["broker-leases-expire"] = {
    "task": "broker.tasks.leases_expire",
    "schedule": 30.0,
    "options": {"expires": 30},
}
CELERY_BEAT_SCHEDULE["broker-failover-sweep"] = {  # safety net for a lost node_failover task
    "task": "broker.tasks.failover_sweep",
    "schedule": 30.0,
    "options": {"expires": 30},
}
# Financing: daily review of open advances (each advance's 60-day minimum-progress window is checked when it
# ends; collateral uptime; delinquency/default policy) and reserved-contract monthly charges.
CELERY_BEAT_SCHEDULE["financing-review"] = {
    "task": "financing.tasks.financing_review_task",
    "schedule": 86400.0,
    "options": {"expires": 3600},
}
CELERY_BEAT_SCHEDULE["financing-reserved-contracts-charge"] = {
    "task": "financing.tasks.reserved_contracts_charge_task",
    "schedule": 86400.0,
    "options": {"expires": 3600},
}
# Financing money through the gateway: disbursements the gateway refused are retried; lenders' received
# repayments are paid out (weekly, at most once a day per lender).
CELERY_BEAT_SCHEDULE["financing-disburse-funded"] = {
    "task": "financing.tasks.disburse_funded_task",
    "schedule": 3600.0,
    "options": {"expires": 600},
}
CELERY_BEAT_SCHEDULE["financing-lender-payouts"] = {
    "task": "financing.tasks.lender_payouts_task",
    "schedule": 3600.0,
    "options": {"expires": 600},
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = DEV_MODE
WHITENOISE_AUTOREFRESH = DEV_MODE

# notify: a wallet debit (an escrow hold) that takes the balance below this tells the customer (wallet.low_balance).
RIGSHIFT_LOW_BALANCE_USD = env.float("RIGSHIFT_LOW_BALANCE_USD", default=10.0)

# Uploads: fleet CSVs are small; anything above this is refused with 413 before parsing.
RIGSHIFT_MAX_UPLOAD_BYTES = env.int("RIGSHIFT_MAX_UPLOAD_BYTES", default=1_000_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = RIGSHIFT_MAX_UPLOAD_BYTES + 100_000
FILE_UPLOAD_MAX_MEMORY_SIZE = RIGSHIFT_MAX_UPLOAD_BYTES + 100_000
# The one JSON parser's limits (common/json_body.py): a larger body is a 413, deeper nesting a 400.
RIGSHIFT_JSON_MAX_BYTES = env.int("RIGSHIFT_JSON_MAX_BYTES", default=DATA_UPLOAD_MAX_MEMORY_SIZE)
RIGSHIFT_JSON_MAX_DEPTH = env.int("RIGSHIFT_JSON_MAX_DEPTH", default=32)

# Role rows loaded with an API token's user (one query: the role permissions then ask nothing more).
RIGSHIFT_API_TOKEN_ROLES = ("user__provider", "user__customer", "user__lender")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "common.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "common.api.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "common.api.exception_handler",
    # One JSON parser with a size and a nesting limit (common/json_body.py); forms and uploads as usual.
    "DEFAULT_PARSER_CLASSES": [
        "common.json_body.JsonBodyParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["common.ratelimit.ScopedViewThrottle"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "RigShift API",
    "DESCRIPTION": "GPU compute marketplace broker: providers, customers, nodes, jobs, billing.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and Redoc from drf-spectacular-sidecar's pinned copies, served as our own static files.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "TierEnum": "marketplace.models.Tier",
        "RegionEnum": "marketplace.models.Region",
        "JobStateEnum": "broker.models.JobState",
        "JobModeEnum": "broker.models.JobMode",
    },
}

# Marketplace economics (documented in README): platform take rate and reserve share.
RIGSHIFT_PLATFORM_FEE_RATE = env.str("RIGSHIFT_PLATFORM_FEE_RATE", default="0.15")
RIGSHIFT_RESERVE_RATE = env.str("RIGSHIFT_RESERVE_RATE", default="0.02")
RIGSHIFT_HEARTBEAT_INTERVAL_S = env.int("RIGSHIFT_HEARTBEAT_INTERVAL_S", default=15)
RIGSHIFT_NODE_OFFLINE_AFTER_S = env.int("RIGSHIFT_NODE_OFFLINE_AFTER_S", default=60)
# E-mail: the console backend unless SMTP is configured (EMAIL_URL=smtp://user:pass@host:587, or submission+tls).
_EMAIL = env.email_url("EMAIL_URL", default="consolemail://")
EMAIL_BACKEND = _EMAIL["EMAIL_BACKEND"]
EMAIL_HOST = _EMAIL.get("EMAIL_HOST", "")
EMAIL_PORT = _EMAIL.get("EMAIL_PORT", 25)
EMAIL_HOST_USER = _EMAIL.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = _EMAIL.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _EMAIL.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _EMAIL.get("EMAIL_USE_SSL", False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="RigShift <noreply@rigshift.local>")
# The last lines of each job's workload log kept on the server (each at most 2,000 characters).
RIGSHIFT_JOB_LOG_MAX_LINES = env.int("RIGSHIFT_JOB_LOG_MAX_LINES", default=5000)
RIGSHIFT_DEMO = env.bool("RIGSHIFT_DEMO", default=False)
# Matcher lock expiry (broker/locks.py): after a matcher dies mid-round, its shard waits this long. > longest round.
RIGSHIFT_MATCH_LOCK_TTL_S = env.int("RIGSHIFT_MATCH_LOCK_TTL_S", default=120)
# A booking's reserved start window must lie within this many days of now (issue 12: year 9999 broke rounds).
RIGSHIFT_BOOKING_HORIZON_DAYS = env.int("RIGSHIFT_BOOKING_HORIZON_DAYS", default=365)
# Jobs pending this long with no successful match round in that time: /healthz degraded, rigshift_match_stalled 1.
RIGSHIFT_MATCH_STALL_S = env.int("RIGSHIFT_MATCH_STALL_S", default=120)
# Prefix of RigShift's own Redis keys (matcher locks, rate limits, token lookups); the test settings give each
# parallel test worker its own.
RIGSHIFT_REDIS_KEY_PREFIX = env.str("RIGSHIFT_REDIS_KEY_PREFIX", default="rigshift:")

# Payments: the local gateway unless Stripe keys are set.
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
if STRIPE_SECRET_KEY and not STRIPE_WEBHOOK_SECRET:
    raise ImproperlyConfigured("STRIPE_WEBHOOK_SECRET must be set together with STRIPE_SECRET_KEY")

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if not DEV_MODE:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }

# Logs: one JSON object per line (time, level, logger, message, request_id, task_id) with LOG_FORMAT=json,
# the default in production; plain lines in development. See common/logging.py.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEV_MODE else "json")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # workers log through LOGGING too (JSON lines with the task id)
LOGGING: dict[str, object] = logging_config(log_format=LOG_FORMAT, level=env.str("LOG_LEVEL", default="INFO"))

# Observability: GET /metrics (Prometheus). With METRICS_TOKEN set it needs `Authorization: Bearer <token>`;
# unset, only loopback clients are answered. See common/metrics.py.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
RIGSHIFT_METRICS_QUEUES = env.list("RIGSHIFT_METRICS_QUEUES", default=["celery"])
RIGSHIFT_METRICS_KEY_PREFIX = env.str("RIGSHIFT_METRICS_KEY_PREFIX", default="rigshift:metrics:")  # Redis counters

# Security: rate limits (per client IP; per node for the agent API), account lockout, CSP. common/ratelimit.py,
# common/lockout.py, common/middleware.py. A rate of "" switches a scope off.
RIGSHIFT_RATE_LIMITS = {
    "login": env.str("RIGSHIFT_RATE_LOGIN", default="20/min"),
    "signup": env.str("RIGSHIFT_RATE_SIGNUP", default="20/hour"),
    "agent": env.str("RIGSHIFT_RATE_AGENT", default="600/min"),
}
RIGSHIFT_TRUSTED_PROXY_COUNT = env.int("RIGSHIFT_TRUSTED_PROXY_COUNT", default=0)
RIGSHIFT_LOCKOUT_ATTEMPTS = env.int("RIGSHIFT_LOCKOUT_ATTEMPTS", default=5)
RIGSHIFT_LOCKOUT_WINDOW_S = env.int("RIGSHIFT_LOCKOUT_WINDOW_S", default=900)
RIGSHIFT_LOCKOUT_COOLDOWN_S = env.int("RIGSHIFT_LOCKOUT_COOLDOWN_S", default=900)
AUTHENTICATION_BACKENDS = ["common.lockout.LockoutBackend"]
SECURE_REFERRER_POLICY = "same-origin"
