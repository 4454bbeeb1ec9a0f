"""Links to stored objects that stay byte-identical between status calls, so caches reuse them.

Two tiers, chosen by settings:

- **public**: with ``THUMBNAILS_PUBLIC_BASE_URL`` set, thumbnails and the storyboard are plain
  URLs under it (an R2 public bucket, its custom domain, or a Worker in front of the bucket):
  no signature, cacheable by every browser and by Cloudflare's edge.
- **presigned**: otherwise, GET URLs signed at the *start* of the current ``STATUS_URL_WINDOW_S``
  window rather than at "now", so every call within a window returns the same URL. Each URL is
  valid for the window plus ``STATUS_URL_EXPIRY_S``: one handed out at the last second of a
  window still lives ``STATUS_URL_EXPIRY_S``. ``STATUS_URL_WINDOW_S=0`` signs at each call.

The video itself is never public: its URL is always presigned.

botocore signs with the current time and takes no other (boto/botocore#2230), so
``_PinnedQueryAuth`` is botocore's own S3 query-string signer given the window's start instead.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from botocore.auth import SIGV4_TIMESTAMP, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from schema.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_AUTH_PARAM_PREFIX = "x-amz-"


@dataclass(frozen=True, slots=True)
class LinkWindow:
    """When this window's URLs were signed and until when they are valid (epoch seconds)."""

    signed_at_s: int
    expires_at_s: int


def link_window(now_s: float, *, window_s: int, expiry_s: int) -> LinkWindow:
    """The signing window that contains ``now_s``; ``window_s=0`` means "now" itself."""
    start = int(now_s) // window_s * window_s if window_s else int(now_s)
    return LinkWindow(start, start + window_s + expiry_s)


class _PinnedQueryAuth(S3SigV4QueryAuth):
    """botocore's S3 SigV4 query signer with a given signing time instead of the clock's."""

    def __init__(
        self, credentials: Credentials, region: str, *, expires_s: int, signed_at: dt.datetime
    ) -> None:
        super().__init__(credentials, "s3", region, expires=expires_s)
        self._timestamp = signed_at.strftime(SIGV4_TIMESTAMP)

    def add_auth(self, request: AWSRequest) -> None:
        """Sign ``request`` in place (``SigV4Auth.add_auth`` with the timestamp pinned)."""
        request.context["timestamp"] = self._timestamp
        # botocore-stubs omit the two private steps SigV4QueryAuth.add_auth runs around signing.
        self._modify_request_before_signing(request)  # type: ignore[attr-defined]
        canonical = self.canonical_request(request)
        signature = self.signature(self.string_to_sign(request, canonical), request)
        self._inject_signature_to_request(request, signature)  # type: ignore[attr-defined]


class ObjectLinks:
    """The status document's URLs for objects of one bucket, all from the same window."""

    def __init__(self, s3: S3Client, settings: Settings, bucket: str, *, now_s: float) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._public_base = settings.thumbnails_public_base_url
        self.window = link_window(
            now_s, window_s=settings.status_url_window_s, expiry_s=settings.status_url_expiry_s
        )
        self._auth = _PinnedQueryAuth(
            Credentials(
                settings.s3_access_key_id, settings.s3_secret_access_key.get_secret_value()
            ),
            settings.s3_region,
            expires_s=self.window.expires_at_s - self.window.signed_at_s,
            signed_at=dt.datetime.fromtimestamp(self.window.signed_at_s, dt.UTC).replace(
                tzinfo=None
            ),
        )

    def private(self, key: str) -> str:
        """A GET URL signed at the window's start: the same string all window long."""
        # The client knows the endpoint, addressing style and key encoding: take its URL and
        # sign that again with the pinned time (a local computation, no request).
        url = self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=1
        )
        parts = urlsplit(url)
        query = [
            (name, value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
            if not name.lower().startswith(_AUTH_PARAM_PREFIX)
        ]
        request = AWSRequest(method="GET", url=urlunsplit(parts._replace(query=urlencode(query))))
        self._auth.add_auth(request)
        return str(request.url)

    def derived(self, key: str) -> str:
        """A thumbnail or storyboard URL: public when a public base is configured, else signed."""
        if self._public_base:
            return f"{self._public_base}/{quote(key, safe='/~')}"
        return self.private(key)
