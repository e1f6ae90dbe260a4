"""The blocking side of Vertex credentials: google-auth finds the credentials (a key file,
Application Default Credentials) and fetches tokens; failures become domain errors.

Imported only when a `vertex` provider is configured: google-auth and its transport take
about half a second to import.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import google.auth
import requests
from google.auth import aws, identity_pool, pluggable
from google.auth import exceptions as auth_errors
from google.auth.credentials import Credentials
from google.auth.transport.requests import Request as RequestsRequest
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from ...config import ConfigError
from ...errors import UpstreamAuth, UpstreamConnection, UpstreamError, UpstreamProtocol, UpstreamUnavailable
from ...redaction import redact

#: The scope Vertex AI calls need.
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
#: Lifetime assumed for a token whose credentials report no expiry.
_UNKNOWN_LIFETIME = 3600.0
_MAX_MESSAGE = 300


class GoogleCredentials:
    """One provider's Google credentials. `fetch()` blocks: call it from a worker thread,
    one call at a time."""

    def __init__(self, provider: str, credentials_file: str | None, timeout: float) -> None:
        self._provider = provider
        self._credentials: Credentials | None = None
        #: The project the credentials name (a key file's `project_id`, the metadata
        #: server's project); None until known.
        self.project: str | None = None
        self._session = requests.Session()
        self._http = _BoundedRequest(self._session, timeout)
        if credentials_file:
            # A small local file, read once at start-up so a wrong path fails the config.
            self._credentials, self.project = load_credentials_file(provider, credentials_file)

    @property
    def quota_project(self) -> str:
        """The project billed for quota, when the credentials name one apart from the
        resource's project (user credentials with a quota project)."""
        return str(getattr(self._credentials, "quota_project_id", None) or "")

    def close(self) -> None:
        self._session.close()

    def fetch(self) -> tuple[str, float]:
        """(token, seconds it stays valid); a domain error when there is none."""
        try:
            if self._credentials is None:
                credentials, project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE], request=self._http)
                self._credentials = credentials
                self.project = self.project or project
            credentials = self._credentials
            credentials.refresh(self._http)
        except Exception as exc:
            raise self._error(exc) from None
        token = credentials.token
        if not isinstance(token, str) or not token:
            raise UpstreamProtocol(f"provider {self._provider!r}: the token endpoint sent no access token",
                                   provider=self._provider)
        expiry: Any = credentials.expiry
        if isinstance(expiry, datetime.datetime):
            now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)  # google-auth's naive UTC
            lifetime = max(0.0, (expiry - now).total_seconds())
        else:
            lifetime = _UNKNOWN_LIFETIME
        return token, lifetime

    def _error(self, exc: Exception) -> UpstreamError:
        """The domain error for a failure to find credentials or fetch a token."""
        name = self._provider
        if isinstance(exc, auth_errors.DefaultCredentialsError):
            return UpstreamAuth(
                f"provider {name!r}: no Google credentials found: set options.credentials_file or "
                "GOOGLE_APPLICATION_CREDENTIALS, or run where a metadata server or workload identity "
                f"provides them ({_text(exc)})",
                provider=name,
            )
        if isinstance(exc, auth_errors.RefreshError):
            text = f"provider {name!r}: the token endpoint refused the credentials: {_text(exc)}"
            if getattr(exc, "retryable", False):
                return UpstreamUnavailable(text, provider=name, retry_safe=True)
            return UpstreamAuth(text, provider=name)
        if isinstance(exc, auth_errors.TransportError):
            return UpstreamConnection(f"provider {name!r}: cannot reach the token endpoint", provider=name,
                                      retry_safe=True)
        if isinstance(exc, UpstreamError):
            return exc
        return UpstreamProtocol(f"provider {name!r}: getting an access token failed ({type(exc).__name__})",
                                provider=name, retry_safe=True)



class _BoundedRequest(RequestsRequest):
    """google-auth's `requests` transport, with our timeout on every token request (its
    own default is two minutes)."""

    def __init__(self, session: requests.Session, timeout: float) -> None:
        super().__init__(session)
        self._timeout = timeout

    def __call__(self, url: str, method: str = "GET", body: Any = None, headers: Any = None,
                 timeout: float | None = None, **kwargs: Any) -> Any:
        return super().__call__(  # type: ignore[no-untyped-call]  # google-auth leaves it unannotated
            url, method=method, body=body, headers=headers,
            timeout=timeout or self._timeout, **kwargs)


def load_credentials_file(provider: str, path: str) -> tuple[Credentials, str | None]:
    """The credentials of a key file, by its `type`, and the project it names. Each type
    is loaded by its own class, so a file of an unexpected type is refused, not run."""
    where = f"provider {provider!r}: options.credentials_file"
    try:
        with open(path, encoding="utf-8") as file:
            info = json.load(file)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path!r}: {exc.strerror or type(exc).__name__}") from None
    except ValueError:
        raise ConfigError(f"{where}: {path!r} is not a JSON file") from None
    kind = info.get("type") if isinstance(info, dict) else None
    scopes = [CLOUD_PLATFORM_SCOPE]
    credentials: Credentials
    try:
        if kind == "service_account":
            credentials = service_account.Credentials.from_service_account_info(info, scopes=scopes)
            return credentials, info.get("project_id")
        if kind == "external_account":
            source = info.get("credential_source")
            source = source if isinstance(source, dict) else {}
            if str(source.get("environment_id", "")).startswith("aws"):
                credentials = aws.Credentials.from_info(info, scopes=scopes)
            elif "executable" in source:
                credentials = pluggable.Credentials.from_info(info, scopes=scopes)
            else:
                credentials = identity_pool.Credentials.from_info(info, scopes=scopes)
            return credentials, None
        if kind == "authorized_user":
            credentials = user_credentials.Credentials.from_authorized_user_info(info, scopes=scopes)
            return credentials, info.get("quota_project_id")
    except (ValueError, KeyError, auth_errors.GoogleAuthError) as exc:
        raise ConfigError(f"{where}: {path!r} is not a valid {kind} file ({_text(exc)})") from None
    raise ConfigError(f"{where}: {path!r} has type {kind!r}; Portico reads service_account, "
                      "external_account (workload identity federation) and authorized_user files")


def _text(exc: Exception) -> str:
    """An exception's first argument as one bounded line, with known secrets removed."""
    first = exc.args[0] if exc.args else ""
    return redact(" ".join(str(first).split()))[:_MAX_MESSAGE]
