"""Reading uploads within limits and turning each into pixels or a clear 4xx.

Nothing here trusts a file name or a Content-Type: the type is sniffed from the
bytes. Limits apply while the body streams in, so an oversized request is
refused before it is held in memory whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator

from PIL import Image

from ..data.io import ImageReadError, looks_like_image, read_image
from .settings import MB, ServeSettings


class UploadError(Exception):
    """A refused request or image: the HTTP status, a short code and a message for a person."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Upload:
    name: str
    data: bytes


async def read_body(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes ``limit`` bytes."""
    parts, total = [], 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise UploadError(413, "request_too_large", f"request larger than {limit / MB:g} MB")
        parts.append(chunk)
    return b"".join(parts)


async def uploads_from_request(request, settings: ServeSettings) -> list[Upload]:
    """Multipart files (any field name), or the raw body as one image."""
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > settings.max_request_bytes:
        raise UploadError(413, "request_too_large", f"request larger than {settings.max_request_bytes / MB:g} MB")
    body = await read_body(request.stream(), settings.max_request_bytes)
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        async def replay():
            yield body

        try:
            form = await MultiPartParser(request.headers, replay(), max_files=settings.max_images + 1,
                                         max_fields=100).parse()
        except MultiPartException as exc:
            too_many = "Too many files" in str(exc)
            raise UploadError(413 if too_many else 400, "too_many_images" if too_many else "bad_multipart",
                              f"more than {settings.max_images} images in one request" if too_many
                              else f"malformed multipart body ({exc})") from None
        uploads = []
        for _, value in form.multi_items():
            if isinstance(value, UploadFile):
                uploads.append(Upload(value.filename or f"image-{len(uploads) + 1}", await value.read()))
        await form.close()
    elif body:
        uploads = [Upload(request.headers.get("x-filename") or "upload", body)]
    else:
        uploads = []
    if not uploads:
        raise UploadError(400, "no_image", "no image in the request: send multipart files, or one image as the body")
    if len(uploads) > settings.max_images:
        raise UploadError(413, "too_many_images", f"more than {settings.max_images} images in one request")
    return uploads


# ImageReadError.kind → (HTTP status, error code)
_READ_ERRORS = {"too_many_pixels": (413, "too_many_pixels"), "unsupported": (415, "unsupported_image"),
                "unreadable": (422, "unreadable_image")}


def decode(upload: Upload, settings: ServeSettings) -> Image.Image | UploadError:
    """Pixels, or the 4xx this upload deserves (run in a worker thread, never on the event loop)."""
    if len(upload.data) > settings.max_image_bytes:
        return UploadError(413, "image_too_large", f"{upload.name}: larger than {settings.max_image_bytes / MB:g} MB")
    if not upload.data:
        return UploadError(422, "empty", f"{upload.name}: empty file")
    if not looks_like_image(upload.data[:64]):
        return UploadError(415, "not_an_image", f"{upload.name}: not an image (the bytes match no image format)")
    try:
        return read_image(upload.data)
    except ImageReadError as exc:
        status, code = _READ_ERRORS[exc.kind]
        return UploadError(status, code, f"{upload.name}: {exc.cause}")
