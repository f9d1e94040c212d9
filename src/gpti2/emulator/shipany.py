"""The ShipAny Two dialect of the emulator (`gpti2 serve --api shipany`, API.md 2.0).

What the real template does, as read in its sources and seen on the wire (a stock
deployment run on loopback): better-auth email sign-in that sets a signed session cookie,
`GET /api/auth/get-session`, `POST /api/ai/generate` and `POST /api/ai/query`, every
failure of those two as HTTP 200 `{"code": -1, "message": ..., "data": null}` with the
template's own messages, the server's row id apart from the provider's task id, and
results in a `taskInfo` JSON string.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote

from gpti2.emulator.art import placeholder_png, size_for
from gpti2.emulator.store import InsufficientCredits, Session, User

if TYPE_CHECKING:
    from gpti2.emulator.server import Emulator, _Handler

COOKIE = "better-auth.session_token"
SECURE_PREFIX = "__Secure-"
SESSION_SECONDS = 7 * 24 * 3600  # better-auth's default expiresIn
PROVIDER = "kie"
MODELS = {
    "text-to-image": "gpt-image-2-text-to-image",
    "image-to-image": "gpt-image-2-image-to-image",
}
COSTS = {"text-to-image": 2, "image-to-image": 4}  # the template's prices
_CDN_ROUTE = re.compile(r"^/cdn/([0-9a-f-]{36})/(\d{1,3})\.png$")
_RATIO = re.compile(r"[1-9]\d{0,4}:[1-9]\d{0,4}")
# better-auth's session rate limit on get-session (the template sets 800 ms per cookie).
_SESSION_INTERVAL = 0.8


def iso(timestamp: float) -> str:
    """A JavaScript Date's JSON form: `2026-12-05T08:10:06.143Z`."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def provider_task_id(job_id: str) -> str:
    """The provider's id of a job (32 hex characters, as kie's), fixed by the row id."""
    return hashlib.sha256(job_id.encode()).hexdigest()[:32]


class ShipAny:
    """The routes of the ShipAny dialect, for one emulator."""

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator
        config = emulator.config
        self.secret = secrets.token_bytes(32)
        self.cookie_name = (SECURE_PREFIX if config.secure_cookies else "") + COOKIE
        self.users: list[User] = []
        self._generated_password: str | None = None
        self._last_session_call: dict[str, float] = {}
        for item in config.users:
            email, _, password = item.partition(":")
            self.users.append(emulator.store.add_user(email, password))
        if not self.users:  # someone to be, for `--base-url local`
            self._generated_password = secrets.token_urlsafe(12)
            password = self._generated_password
            self.users.append(emulator.store.add_user("emulator@localhost", password))

    # -- sessions and the signed cookie ------------------------------------------------

    def sign(self, token: str) -> str:
        """The cookie value better-auth sets: `token.signature` (HMAC-SHA256, base64)."""
        mac = hmac.new(self.secret, token.encode(), hashlib.sha256).digest()
        return f"{token}.{base64.b64encode(mac).decode()}"

    def new_session(self, user: User) -> tuple[Session, str]:
        """A session and its cookie value (URL-encoded, as in Set-Cookie)."""
        token = secrets.token_urlsafe(24)[:32]
        session = self.emu.store.create_session(user, self.emu.config.session_seconds, token)
        return session, quote(self.sign(token), safe="")

    def session_for(self, handler: _Handler) -> Session | None:
        """The live session the request's cookie names; None when signed out, the cookie is
        another name, its signature is wrong, or the session expired or ended."""
        for part in handler.headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name != self.cookie_name or not value:
                continue
            token, _, signature = unquote(value).rpartition(".")
            expected, given = self.sign(token).encode(), f"{token}.{signature}".encode()
            if not token or not hmac.compare_digest(expected, given):
                return None
            session = self.emu.store.session(token)
            if session is None or session.expires <= time.time():
                return None
            return session
        return None

    def client_credentials(self) -> tuple[str, str, str]:
        """(cookie value, scheme, cookie name) of a fresh session of the first user."""
        _, value = self.new_session(self.users[0])
        return value, "cookie", self.cookie_name

    def banner(self) -> list[str]:
        """What `gpti2 serve` prints about signing in."""
        lines = [f"sign in with: {', '.join(u.email for u in self.users)}"]
        if self._generated_password:
            lines.append(f"password: {self._generated_password}")
        return lines

    def _set_cookie(self, value: str, max_age: int) -> str:
        secure = "; Secure" if self.emu.config.secure_cookies else ""
        attributes = f"Max-Age={max_age}; Path=/; HttpOnly{secure}; SameSite=Lax"
        return f"{self.cookie_name}={value}; {attributes}"

    # -- routing --------------------------------------------------------------------------

    def handle(self, handler: _Handler, method: str, path: str) -> bool:
        """Answer a request; False leaves it to the shared routes (the quick route)."""
        if path == "/api/generate-images":
            return False
        routes = {
            "/api/auth/sign-in/email": ("POST", self._sign_in),
            "/api/auth/get-session": ("GET", self._get_session),
            "/api/auth/sign-out": ("POST", self._sign_out),
            "/api/ai/generate": ("POST", self._generate),
            "/api/ai/query": ("POST", self._query),
        }
        if path in routes:
            wanted, answer = routes[path]
            if method != wanted:  # Next.js: 405, empty body, no content type
                handler._read_body()
                handler._send(405)
            else:
                answer(handler)
            return True
        if (match := _CDN_ROUTE.match(path)) and method == "GET":
            self._cdn(handler, match[1], int(match[2]))
            return True
        handler._read_body()
        handler._send(404, b"This page could not be found.", "text/plain; charset=utf-8")
        return True

    # -- better-auth --------------------------------------------------------------------

    def _sign_in(self, handler: _Handler) -> None:
        raw = handler._read_body()
        body: Any
        if "x-www-form-urlencoded" in handler.headers.get("Content-Type", ""):
            body = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        else:
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = None
        email = body.get("email") if isinstance(body, dict) else None
        password = body.get("password") if isinstance(body, dict) else None
        if not isinstance(email, str) or not isinstance(password, str) or not email:
            handler._json(400, {"code": "VALIDATION_ERROR", "message": "Invalid body parameters"})
            return
        user = self.emu.store.user(email, password)
        if user is None:
            handler._json(
                401,
                {"code": "INVALID_EMAIL_OR_PASSWORD", "message": "Invalid email or password"},
            )
            return
        session, value = self.new_session(user)
        handler._json(
            200,
            {"redirect": False, "token": session.token, "user": _user_json(user)},
            {"Set-Cookie": self._set_cookie(value, int(session.expires - session.created))},
        )

    def _get_session(self, handler: _Handler) -> None:
        key = handler.headers.get("Cookie", "")
        now = time.monotonic()
        interval = self.emu.config.session_interval
        with self.emu._counter_lock:
            last = self._last_session_call.get(key)
            self._last_session_call[key] = now
        if interval and last is not None and now - last < interval:
            handler._json(
                429,
                {"error": "too_many_requests", "message": "Please retry after 1s."},
                {"Retry-After": "1", "Cache-Control": "no-store"},
            )
            return
        session = self.session_for(handler)
        if session is None:
            handler._json(200, None)
            return
        handler._json(
            200,
            {
                "session": {
                    "expiresAt": iso(session.expires),
                    "token": session.token,
                    "createdAt": iso(session.created),
                    "updatedAt": iso(session.created),
                    "ipAddress": handler.client_address[0],
                    "userAgent": handler.headers.get("User-Agent", ""),
                    "userId": session.user.id,
                    "id": session.id,
                },
                "user": _user_json(session.user),
            },
        )

    def _sign_out(self, handler: _Handler) -> None:
        handler._read_body()
        session = self.session_for(handler)
        if session is not None:
            self.emu.store.end_session(session.token)
        handler._json(200, {"success": True}, {"Set-Cookie": self._set_cookie("", 0)})

    # -- the AI routes ------------------------------------------------------------------

    def _fail(self, handler: _Handler, message: str) -> None:
        handler._json(200, {"code": -1, "message": message, "data": None})

    def _ok(self, handler: _Handler, data: Any) -> None:
        handler._json(200, {"code": 0, "message": "ok", "data": data})

    def _read(self, handler: _Handler) -> Any:
        raw = handler._read_body()
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):  # the message Node's JSON.parse gives
            text = raw.decode("utf-8", "replace")
            if not text.strip():
                return "Unexpected end of JSON input"
            return f"Unexpected token '{text.strip()[:1]}', \"{text[:30]}\" is not valid JSON"

    def _generate(self, handler: _Handler) -> None:
        body = self._read(handler)
        if isinstance(body, str):
            self._fail(handler, body)
            return
        body = body if isinstance(body, dict) else {}
        problem = _generate_problem(body)
        session = self.session_for(handler) if problem is None else None
        if problem is None and session is None:
            problem = "no auth, please sign in"
        scene = body.get("scene")
        if problem is None and scene not in COSTS:
            problem = "invalid scene"
        if problem is None and self.emu.store.credits(_owner(session)) < COSTS[scene]:
            problem = "insufficient credits"
        if problem is None and not body.get("prompt"):
            problem = "prompt is required"
        if problem is None and body.get("model") not in MODELS.values():
            problem = f"generate image failed: model {body.get('model')!r} is not supported"
        if problem is not None:
            self._fail(handler, problem)
            return
        assert session is not None
        owner, config, cost = session.user.owner, self.emu.config, COSTS[scene]
        options = body.get("options") if isinstance(body.get("options"), dict) else {}
        ratio = options.get("aspect_ratio")
        fields = {
            "prompt": body["prompt"],
            "modelId": body["model"],
            "featureId": "",
            "mode": scene,
            "aspectRatio": ratio if isinstance(ratio, str) and _RATIO.fullmatch(ratio) else "1:1",
        }
        try:
            job_id, _ = self.emu.store.create_job(
                owner,
                fields,
                cost=cost,
                duration=config.job_seconds,
                will_fail=self.emu.chance(config.job_fail_rate),
                image_count=config.images_per_job,
                idempotency_key=None,  # the template ignores it
                job_id=str(uuid.uuid4()),
            )
        except InsufficientCredits as exc:  # lost a race with another start
            self._fail(handler, f"Insufficient credits, {exc.args[0]} < {cost}")
            return
        data = self._row(handler, session.user, job_id)
        assert data is not None
        for key in ("createdAt", "updatedAt", "deletedAt"):  # the new row, as inserted
            del data[key]
        data["taskInfo"] = "{}"
        self._ok(handler, data)

    def _query(self, handler: _Handler) -> None:
        body = self._read(handler)
        if isinstance(body, str):
            self._fail(handler, body)
            return
        task_id = body.get("taskId") if isinstance(body, dict) else None
        if not task_id or not isinstance(task_id, str):
            self._fail(handler, "invalid params")
            return
        session = self.session_for(handler)
        if session is None:
            self._fail(handler, "no auth, please sign in")
            return
        data = self._row(handler, session.user, task_id)
        if data is None:
            exists = self.emu.store.job(None, task_id) is not None
            self._fail(handler, "no permission" if exists else "task not found")
            return
        self._ok(handler, data)

    def _row(self, handler: _Handler, user: User, job_id: str) -> dict[str, Any] | None:
        """The job's row as the template answers it (its `taskInfo` a JSON string)."""
        job = self.emu.store.job(user.owner, job_id)
        if job is None:
            return None
        provider_id = provider_task_id(job.id)
        created = iso(job.created)
        info: dict[str, Any]
        if job.status == "success":
            host, port = handler.server.server_address[:2]
            info = {
                "images": [
                    {
                        "id": "",
                        "createTime": created,
                        "imageUrl": f"http://{host}:{port}/cdn/{job.id}/{n}.png",
                    }
                    for n in range(job.image_count)
                ],
                "status": "success",
                "errorCode": "",
                "errorMessage": "",
                "createTime": created,
            }
        elif job.status == "failed":
            info = {
                "status": "fail",
                "errorCode": "500",
                "errorMessage": job.error or "",
                "createTime": created,
            }
        else:
            word = "waiting" if job.status == "pending" else "generating"
            info = {"status": word, "errorCode": "", "errorMessage": "", "createTime": created}
        options = {"aspect_ratio": job.aspect_ratio}
        return {
            "id": job.id,
            "userId": user.id,
            "mediaType": "image",
            "provider": PROVIDER,
            "model": job.model_id,
            "prompt": job.prompt,
            "options": _js(options),
            "status": job.status,
            "createdAt": created,
            "updatedAt": created,
            "deletedAt": None,
            "taskId": provider_id,
            "taskInfo": _js(info),
            "taskResult": _js({"taskId": provider_id}),
            "costCredits": COSTS.get(job.mode, 2),
            "scene": job.mode,
        }

    def _cdn(self, handler: _Handler, job_id: str, n: int) -> None:
        """The provider's CDN: anyone with the URL gets the image (no credentials)."""
        job = self.emu.store.job(None, job_id)
        if job is None or job.status != "success" or not 0 <= n < job.image_count:
            handler._send(404, b"Not Found", "text/plain")
            return
        width, height = size_for(job.aspect_ratio, self.emu.config.image_size)
        handler._send(200, placeholder_png(f"{job.prompt}#{n + 1}", width, height), "image/png")


def _js(value: Any) -> str:
    """JSON.stringify's compact form (the template stores these as strings)."""
    return json.dumps(value, separators=(",", ":"))


def _owner(session: Session | None) -> str:
    assert session is not None
    return session.user.owner


def _user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "image": None,
        "emailVerified": False,
        "createdAt": iso(user.created),
        "updatedAt": iso(user.created),
    }


def _generate_problem(body: dict[str, Any]) -> str | None:
    """The template's checks before it looks at the session, in its order."""
    provider, media, model = body.get("provider"), body.get("mediaType"), body.get("model")
    prompt, options = body.get("prompt"), body.get("options")
    if not provider or not media or not model:
        return "invalid params"
    if not prompt and not options:
        return "prompt or options is required"
    if prompt:
        if not isinstance(prompt, str):
            return "prompt.trim is not a function"
        if not prompt.strip():
            return "prompt cannot be empty"
        if len(prompt) > 2000:
            return "prompt too long (max 2000 chars)"
    if media != "image":
        return "invalid mediaType"
    if provider != PROVIDER:
        return "invalid provider"
    return None
