"""Server dialects (API.md 2.0): the one home of everything that differs between the job
servers gpti2 speaks to.

A profile's `api` key names the dialect; the dialect gives the defaults of the keys that
differ (routes, provider, model, how credentials are sent), the start body, which field
is the job's id, how its envelope errors map to exit codes, and how one signs in. Every
default can be overridden per profile; `ServerApi` is a dialect with the profile's
values applied, and is what the rest of the code asks.

Kept free of heavy imports: settings.py reads the defaults from here.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

if TYPE_CHECKING:
    from gpti2.errors import Gpti2Error
    from gpti2.jobs import StartRequest
    from gpti2.settings import Settings

# The settings whose default depends on the dialect.
DIALECT_KEYS = (
    "start_route",
    "status_route",
    "job_provider",
    "job_model",
    "auth_scheme",
    "cookie_name",
)
SECURE_PREFIX = "__Secure-"


def split_route(route: str, default_method: str) -> tuple[str, str]:
    """(METHOD, path) of a route written `[METHOD ]PATH`."""
    method, _, path = route.strip().partition(" ")
    if not path:
        return default_method, method
    return method.upper(), path.strip()


class Dialect:
    """How one kind of server is spoken to. Subclasses fill in the differences."""

    name: ClassVar[str]
    description: ClassVar[str]
    defaults: ClassVar[dict[str, str]]
    id_keys: ClassVar[tuple[str, ...]]  # where the job's own id is, first found wins
    provider_id_key: ClassVar[str | None] = None  # a second id, the provider's
    sign_in_route: ClassVar[str | None] = None  # email and password sign-in
    session_route: ClassVar[str | None] = None  # who am I, and until when
    sign_out_route: ClassVar[str | None] = None  # ends a session on the server
    session_cookie: ClassVar[str | None] = None  # the cookie a sign-in sets (base name)
    login_command: ClassVar[str] = "gpti2 auth login"
    # Whether a local reference image may go as a data: URL (else the server forwards it
    # to a provider that expects URLs)
    data_url_references: ClassVar[bool] = True

    def default(self, key: str, base_url: str) -> str:
        """The default of a dialect key for a profile with this base URL."""
        return self.defaults[key]

    def model_for(self, mode: str) -> str:
        """The default job model for a mode."""
        return self.defaults["job_model"]

    def start_body(self, request: StartRequest, provider: str) -> dict[str, Any]:
        raise NotImplementedError

    def envelope_error(self, code: int, message: str) -> Gpti2Error:
        """The error (and exit code) of an envelope whose code is not success."""
        from gpti2.wire import envelope_error

        return envelope_error(code, message)

    def cookie_names(self, base_url: str) -> tuple[str, ...]:
        """Names a session cookie from this server may have, the likeliest first."""
        if not self.session_cookie:
            return ()
        secure = SECURE_PREFIX + self.session_cookie
        plain = self.session_cookie
        return (secure, plain) if base_url.lower().startswith("https:") else (plain, secure)


class Gpti2Dialect(Dialect):
    """The project's own API: API.md 2.1 and 2.2, bearer tokens, HTTP statuses."""

    name = "gpti2"
    description = "the gpt-image2 API (API.md 2.1-2.2)"
    defaults: ClassVar[dict[str, str]] = {
        "start_route": "POST /api/aiimage/start",
        "status_route": "GET /api/aiimage/status?taskId={taskId}",
        "job_provider": "kie",
        "job_model": "gpt-image-2-t2i",
        "auth_scheme": "bearer",
        "cookie_name": "better-auth.session_token",
    }
    id_keys = ("taskId", "id", "jobId", "task_id")

    def start_body(self, request: StartRequest, provider: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "featureId": request.feature_id,
            "mode": request.mode,
            "modelId": request.model_id or self.model_for(request.mode),
            "prompt": request.prompt,
            "aspectRatio": request.aspect_ratio,
        }
        if request.image_urls:
            body["imageUrls"] = list(request.image_urls)
        return body


# ShipAny Two answers every /api/ai/* failure as HTTP 200 {"code": -1, "message": ...}.
# Its messages, by what the user can do about them (FINDINGS of the real template):
_SHIPANY_AUTH = re.compile(r"no auth|please sign in", re.IGNORECASE)
_SHIPANY_CREDITS = re.compile(r"credits", re.IGNORECASE)
_SHIPANY_REJECTED = re.compile(
    r"^invalid (params|scene|mediaType|provider)\b|^task not found|^no permission|^prompt\b"
    r"|is required|cannot be empty|too long|^Unexpected |is not valid JSON|is not a function",
    re.IGNORECASE,
)


class ShipAnyDialect(Dialect):
    """The ShipAny Two template (better-auth sessions, /api/ai/generate and /api/ai/query),
    the base of the public GPT-Image-2 sites."""

    name = "shipany"
    description = "ShipAny Two (POST /api/ai/generate, POST /api/ai/query, better-auth)"
    defaults: ClassVar[dict[str, str]] = {
        "start_route": "POST /api/ai/generate",
        "status_route": "POST /api/ai/query",
        "job_provider": "kie",
        "job_model": "gpt-image-2-text-to-image",
        "auth_scheme": "cookie",
        "cookie_name": "better-auth.session_token",
    }
    id_keys = ("id",)  # the server's row; its `taskId` is the provider's
    provider_id_key = "taskId"
    sign_in_route = "/api/auth/sign-in/email"
    session_route = "/api/auth/get-session"
    sign_out_route = "/api/auth/sign-out"
    session_cookie = "better-auth.session_token"
    login_command = "gpti2 auth login --email ADDRESS"
    data_url_references = False  # forwarded verbatim to kie, which documents URLs
    _models: ClassVar[dict[str, str]] = {
        "text_to_image": "gpt-image-2-text-to-image",
        "image_to_image": "gpt-image-2-image-to-image",
    }

    def default(self, key: str, base_url: str) -> str:
        if key == "cookie_name":  # better-auth names it by the site's scheme
            return self.cookie_names(base_url)[0]
        return self.defaults[key]

    def model_for(self, mode: str) -> str:
        return self._models.get(mode, self.defaults["job_model"])

    def start_body(self, request: StartRequest, provider: str) -> dict[str, Any]:
        options: dict[str, Any] = {"aspect_ratio": request.aspect_ratio}
        if request.image_urls:
            options["image_input"] = list(request.image_urls)
        return {
            "provider": provider,
            "mediaType": "image",
            "model": request.model_id or self.model_for(request.mode),
            "prompt": request.prompt,
            "scene": request.mode.replace("_", "-"),
            "options": options,
        }

    def envelope_error(self, code: int, message: str) -> Gpti2Error:
        from gpti2.errors import CredentialsRefused, CreditsError, RejectedError, ServerError

        if _SHIPANY_AUTH.search(message):
            return CredentialsRefused(message, hint=f"sign in with `{self.login_command}`")
        if _SHIPANY_CREDITS.search(message):
            return CreditsError(message, hint="top up your credits, then try again")
        if _SHIPANY_REJECTED.search(message):
            return RejectedError(f"the server rejected the request: {message}")
        if message.startswith("generate image failed"):  # no job, nothing charged
            return ServerError(
                f"the server failed: {message}",
                hint="its provider refused the job: check the model (-m, job_model) and the prompt",
            )
        # The provider or the server failed (`generate image failed: ...`, `request
        # failed with status: 500`, `unknown status: ...`): nothing the request can fix.
        return ServerError(f"the server failed: {message}")


DIALECTS: dict[str, Dialect] = {d.name: d for d in (Gpti2Dialect(), ShipAnyDialect())}
DEFAULT = "gpti2"


def get(name: str) -> Dialect:
    return DIALECTS[name]


class ServerApi(NamedTuple):
    """A dialect with one profile's values applied: what the core asks about a server."""

    dialect: Dialect
    start_route: str
    status_route: str
    job_provider: str

    @classmethod
    def default(cls, name: str = DEFAULT) -> ServerApi:
        dialect = get(name)
        return cls(
            dialect,
            dialect.defaults["start_route"],
            dialect.defaults["status_route"],
            dialect.defaults["job_provider"],
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerApi:
        return cls(
            get(settings.api), settings.start_route, settings.status_route, settings.job_provider
        )

    @property
    def name(self) -> str:
        return self.dialect.name

    def envelope_error(self, code: int, message: str) -> Gpti2Error:
        return self.dialect.envelope_error(code, message)

    def start(self, request: StartRequest) -> tuple[str, str, dict[str, Any]]:
        """(method, path, body) of a job start."""
        method, path = split_route(self.start_route, "POST")
        return method, path, self.dialect.start_body(request, self.job_provider)

    def status(self, task_id: str) -> tuple[str, str, dict[str, str] | None]:
        """(method, path, JSON body) of a status query for this profile."""
        return status_request(self.status_route, task_id)


def status_request(route: str, task_id: str) -> tuple[str, str, dict[str, str] | None]:
    """(method, path, JSON body) for a status route template `[METHOD ]PATH`: `{taskId}`
    in the path replaced by the URL-encoded id; with POST the id goes as JSON
    `{"taskId": ...}`."""
    from urllib.parse import quote

    method, path = split_route(route, "GET")
    path = path.replace("{taskId}", quote(task_id, safe=""))
    return method, path, ({"taskId": task_id} if method == "POST" else None)
