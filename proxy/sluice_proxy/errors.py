"""The gateway's error tree: raised where the fact is known, rendered once per wire format.

GatewayError
├─ BadRequestError 400            param names the field
├─ AuthenticationError 401
├─ PermissionDeniedError 403
├─ NotFoundError 404
├─ RequestTooLargeError 413
├─ RateLimitError 429             Retry-After and x-ratelimit-* headers
│  └─ BudgetExceededError 429     type insufficient_quota: do not retry
├─ UpstreamError 502              .reason drives fallback
│  ├─ UpstreamTimeoutError 504
│  └─ UpstreamStatusError         carries the provider's status
└─ ServiceUnavailableError 503    no healthy backend, limiter down in closed mode
"""

from __future__ import annotations

from collections.abc import Mapping

from .config.schema import FallbackReason


class GatewayError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers: dict[str, str] = dict(headers or {})


class BadRequestError(GatewayError):
    status = 400
    type = "invalid_request_error"


class AuthenticationError(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDeniedError(GatewayError):
    status = 403
    type = "permission_error"
    code = "model_not_allowed"


class NotFoundError(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class RequestTooLargeError(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimitError(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BudgetExceededError(RateLimitError):
    type = "insufficient_quota"
    code = "insufficient_quota"


class ServiceUnavailableError(GatewayError):
    status = 503
    type = "server_error"
    code = "service_unavailable"


class UpstreamError(GatewayError):
    """A backend failed; ``reason`` says whether fallback may move on."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        reason: FallbackReason | None,
        retry_after: float | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, headers=headers)
        self.reason = reason
        self.retry_after = retry_after
        if status is not None:
            self.status = status


class UpstreamTimeoutError(UpstreamError):
    status = 504
    code = "upstream_timeout"

    def __init__(self, message: str) -> None:
        super().__init__(message, reason=FallbackReason.TIMEOUT)


class UpstreamStatusError(UpstreamError):
    """The provider answered with an error status; its message is passed on."""

    code = "upstream_status"


def reason_for_status(status: int) -> FallbackReason | None:
    """Which fallback class an upstream HTTP status belongs to (None: not retryable)."""
    if status == 429:
        return FallbackReason.RATE_LIMIT
    if status in (408, 504):
        return FallbackReason.TIMEOUT
    if status >= 500:
        return FallbackReason.SERVER_ERROR
    return None


def error_type_for_status(status: int) -> type[GatewayError]:
    """The client-facing class an upstream's 4xx maps to when it is passed through."""
    return {
        400: BadRequestError,
        401: AuthenticationError,
        403: PermissionDeniedError,
        404: NotFoundError,
        413: RequestTooLargeError,
        429: RateLimitError,
    }.get(status, UpstreamStatusError if status >= 500 else BadRequestError)
