"""Flower with throttled logins: ``python -m producer.ops.flower_login flower <options>``.

Flower checks ``FLOWER_BASIC_AUTH`` itself, in ``BaseHandler.get_current_user``, which every
authenticated page and API call goes through; a process that only ``exec``s Flower never sees
a failed login. So ``videofleet flower`` runs Flower through this module instead, which wraps
that one method before handing over to ``celery flower``:

- an IP over ``RATE_LIMIT_FLOWER_AUTH_FAILURES_PER_IP_PER_HOUR`` gets 429 with ``Retry-After``
  before its credentials are compared (so a right guess among wrong ones is refused too);
- a 401 for a request that carried an ``Authorization`` header counts as one failure (a browser's
  first request, without one, asks for the login prompt and is not counted);
- the limiter's Redis unreachable is a 503, never an unthrottled login.

The counters are the ``LoginThrottle`` ones the producer's doors use (``producer.web.ratelimit``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import tornado.web
from flower.views import BaseHandler

from producer.web.errors import ApiError
from producer.web.ratelimit import LoginThrottle, client_ip_of, limits_storage
from schema.settings import Settings

DOOR = "flower"


def throttle_logins(settings: Settings) -> None:
    """Wrap Flower's credential check in a ``LoginThrottle`` for ``settings`` (once a process)."""
    throttle = LoginThrottle(
        limits_storage(settings),
        per_hour=settings.rate_limit_flower_auth_failures_per_ip_per_hour,
        door=DOOR,
    )
    check_credentials: Callable[[BaseHandler], Any] = BaseHandler.get_current_user

    def get_current_user(handler: BaseHandler) -> Any:
        request = handler.request
        ip = client_ip_of(request.headers, request.remote_ip, settings)
        try:
            throttle.check(ip)
            try:
                return check_credentials(handler)
            except tornado.web.HTTPError as exc:
                if exc.status_code == 401 and "Authorization" in request.headers:
                    throttle.count_failure(ip)
                raise
        except ApiError as exc:
            # Finish, not HTTPError: send_error would clear the Retry-After header.
            handler.set_status(exc.status_code)
            for name, value in (exc.headers or {}).items():
                handler.set_header(name, value)
            handler.set_header("Content-Type", "text/plain; charset=UTF-8")
            raise tornado.web.Finish(exc.message) from exc

    BaseHandler.get_current_user = get_current_user


def main() -> None:
    """Install the throttle, then run ``celery`` with this process's arguments."""
    from celery.bin.celery import main as celery_main

    settings = Settings()
    if settings.flower_basic_auth is not None:  # with --unauthenticated there is no login
        throttle_logins(settings)
    sys.argv = ["celery", *sys.argv[1:]]
    celery_main()


if __name__ == "__main__":
    main()
