"""Client language tags -> Whisper language codes, checked before any work.

Clients send BCP-47 tags (`en-US`, `pt_BR`, `zh-Hant-TW`, deprecated `iw`);
Whisper knows ~100 bare codes (its tokenizer's list). An unknown code would
reach faster-whisper and fail there as a 500 on every request (and on every
turn of a live session), so it is refused here with a 400 instead.
"""

from __future__ import annotations

from functools import lru_cache

import langcodes
from faster_whisper.tokenizer import _LANGUAGE_CODES

from voxhost.errors import InvalidRequest

WHISPER_CODES: frozenset[str] = frozenset(_LANGUAGE_CODES)

# Where Whisper's code differs from the standard one langcodes normalises to
# (Whisper kept the withdrawn `jw`; it has no `nb`/`fil`, which mean `no`/`tl`).
_TO_WHISPER = {"jv": "jw", "nb": "no", "fil": "tl", "cmn": "zh"}
# Whisper's own names where the standard English name differs (verbose_json
# reports names, like OpenAI: "english").
_WHISPER_NAMES = {"my": "myanmar", "nn": "nynorsk", "jw": "javanese"}

MAX_TAG_CHARS = 35  # RFC 5646's practical limit for a language tag


def whisper_language(tag: str | None, *, param: str = "language") -> str | None:
    """The Whisper code for a client's language tag; None passes through
    (auto-detect). Raises InvalidRequest for anything Whisper can't decode."""
    if tag is None:
        return None
    code = _lookup(tag.strip())
    if code is None:
        shown = tag[:20] + ("..." if len(tag) > 20 else "")
        raise InvalidRequest(
            f"Unsupported language {shown!r}: use an ISO-639-1 code or BCP-47 tag Whisper knows, such as "
            "'en' or 'en-US'.",
            param=param, code="unsupported_language",
        )
    return code


def check_model_language(engine, language: str | None, task: str = "transcribe", *,
                         param: str = "language", model_param: str = "model") -> None:
    """English-only models can neither translate nor decode another language."""
    if engine.multilingual:
        return
    if task == "translate":
        raise InvalidRequest(
            f"Model '{engine.name}' is English-only and cannot translate; use a multilingual model.",
            param=model_param,
        )
    if language is not None and language != "en":
        raise InvalidRequest(
            f"Model '{engine.name}' is English-only; language '{language}' is not supported.", param=param
        )


def language_name(code: str) -> str:
    """Whisper's lower-case English name for a code ("en" -> "english")."""
    if code in _WHISPER_NAMES:
        return _WHISPER_NAMES[code]
    name = langcodes.Language.get(code).language_name()
    return name.lower() if name else code


@lru_cache(maxsize=1024)
def _lookup(tag: str) -> str | None:
    if not tag or len(tag) > MAX_TAG_CHARS:
        return None
    lowered = tag.lower().replace("_", "-")
    if lowered in WHISPER_CODES:  # the common case, and Whisper's non-standard `jw`
        return lowered
    try:
        language = langcodes.Language.get(lowered, normalize=True).language
    except (ValueError, LookupError):  # langcodes raises LanguageTagError (a ValueError)
        return None
    if not language:
        return None
    language = _TO_WHISPER.get(language, language)
    return language if language in WHISPER_CODES else None
