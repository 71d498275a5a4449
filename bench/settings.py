"""Production settings plus the benchmark's comparison view (bench/urls.py).

The benchmark sets DEBUG, SECRET_KEY, DATABASE_URL, REDIS_URL ... in the environment, exactly as a
deployment would; this module changes nothing else, so gunicorn serves the same middleware stack.
"""

from allumi.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
