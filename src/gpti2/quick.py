"""The quick route: POST /api/generate-images, one base64 image back."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from gpti2.client import ApiClient, RetryPolicy, host_of, loads, unwrap
from gpti2.errors import RejectedError, ServerError, UsageError
from gpti2.images import ImageInfo, decode_base64_image, describe

ROUTE = "/api/generate-images"
# The providers the public template this route follows accepts (API.md 1), each with a
# model it takes (the template's "quality" choice). Other servers may accept more, so this
# only shapes hints and notes, never refuses a request.
PROVIDER_MODELS = {
    "openai": "dall-e-3",
    "replicate": "stability-ai/stable-diffusion-3.5-large",
    "fireworks": "accounts/fireworks/models/flux-1-dev-fp8",
    "vertex": "imagen-3.0-generate-001",
}
TEMPLATE_PROVIDERS = tuple(PROVIDER_MODELS)
_IMAGE_FIELD = re.compile(rb'"image"\s*:\s*"')
_UNESCAPE_SLICE = 1 << 20


class QuickRequest(NamedTuple):
    """One quick-route request, as sent on the wire."""

    prompt: str
    provider: str
    model_id: str
    aspect_ratio: str

    def body(self) -> dict[str, str]:
        return {
            "prompt": self.prompt,
            "provider": self.provider,
            "modelId": self.model_id,
            "aspectRatio": self.aspect_ratio,
        }


class GeneratedImage(NamedTuple):
    """Decoded image bytes and what the server said about them."""

    data: bytes
    info: ImageInfo
    provider: str


def model_advice(provider: str, model: str) -> str | None:
    """What to say when an OpenAI model (the default -m is dall-e-3) goes to another of
    the template's providers, which would fail it after the request is sent."""
    if provider == "openai" or provider not in PROVIDER_MODELS:
        return None
    if not model.lower().startswith(("dall-e", "gpt-image")):
        return None
    return (
        f"{model} is an OpenAI model; {provider} takes models such as"
        f" {PROVIDER_MODELS[provider]} (give it with -m)"
    )


def clean_prompt(prompt: str) -> str:
    """Strip a prompt and refuse an empty one."""
    text = prompt.strip()
    if not text:
        raise UsageError("the prompt is empty", hint="give a prompt, or - to read it from stdin")
    return text


def split_image_field(body: bytearray) -> tuple[Any, Any]:
    """Parse a quick-route body, returning (payload, image) without copying the image.

    The image string is usually most of the body; it is sliced out as a view when its only
    escapes are `\\/` (undone in place first), and the small rest of the document is parsed
    on its own. Any other escape takes the ordinary JSON parse.
    """
    match = _IMAGE_FIELD.search(body)
    if match:
        start = match.end()
        end = body.find(b'"', start)
        if end != -1:
            end = _unescape_slashes(body, start, end)
        if end != -1 and body.find(b"\\", start, end) == -1:
            try:
                rest = loads(body[:start] + body[end:])
            except ValueError:
                rest = None
            if isinstance(rest, dict) and rest.get("image") == "":
                return rest, memoryview(body)[start:end]
    try:
        payload = unwrap(loads(body))
    except ValueError:
        return None, None
    image = payload.get("image") if isinstance(payload, dict) else None
    return payload, image


def _unescape_slashes(body: bytearray, start: int, end: int) -> int:
    """Turn each `\\/` in body[start:end] into `/` in place, when every backslash there
    is one of them; return the new end of that span (`end` when nothing changed).

    Works a slice at a time, so it needs no second copy of a large image string.
    """
    backslashes = body.count(b"\\", start, end)
    if backslashes == 0 or body.count(b"\\/", start, end) != backslashes:
        return end
    write = read = start
    while read < end:
        stop = min(read + _UNESCAPE_SLICE, end)
        if body[stop - 1] == 0x5C:  # keep a `\\/` pair in one slice
            stop += 1
        piece = body[read:stop].replace(b"\\/", b"/")
        body[write : write + len(piece)] = piece
        write += len(piece)
        read = stop
    del body[write:end]
    return write


def generate(client: ApiClient, request: QuickRequest) -> GeneratedImage:
    """Send the request (never with credentials) and decode the image it returns."""
    try:
        reply = client.send(
            "POST", ROUTE, policy=RetryPolicy.PAID_POST, json_body=request.body(), auth=False
        )
    except RejectedError as exc:
        base = client.base_url.rstrip("/")
        if exc.hint is None and exc.status == 404 and base.endswith(("/api", ROUTE)):
            site = base.removesuffix(ROUTE).removesuffix("/api")
            exc.hint = f"the base URL holds the route; give the site alone: --base-url {site}"
        if exc.hint is None and request.provider not in TEMPLATE_PROVIDERS:
            exc.hint = (
                f"the quick route takes -p {', '.join(TEMPLATE_PROVIDERS)} on servers of "
                f"this shape, not {request.provider!r}"
            )
        raise
    payload, image = split_image_field(reply.body)
    if not isinstance(payload, dict):
        reply.json()  # raises the malformed-response error with a preview
        raise ServerError(f"malformed response from {host_of(reply.url)}: expected an object")
    unwrap(payload)
    if not isinstance(image, str | memoryview) or len(image) == 0:
        raise ServerError(f"malformed response from {host_of(reply.url)}: no image in it")
    data = decode_base64_image(image)
    del image, reply
    provider = payload.get("provider")
    return GeneratedImage(
        data, describe(data), provider if isinstance(provider, str) else request.provider
    )
