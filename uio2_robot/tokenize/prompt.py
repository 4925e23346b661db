"""Prompt building: interleaved text and image segments -> the encoder's prompt arrays.

A VIMA prompt is a list such as ``["Put the ", <crop>, " into the ", <crop>, "."]``. The text
becomes text ids; each image becomes one marker token ``<img_k>`` at the place it appears, and its
pixels go to slot k of ``prompt_images`` (the model resamples them to latents that carry the same
index k, which is how the encoder ties a marker to its picture).

Token layout (``PREFIX_LEN = 2``)::

    [paradigm] [target modality] text ... <img_0> text ... <img_1> ... <pad> <pad>

Position 0 is the mixture-of-denoisers paradigm (``[S]`` for acting), position 1 the modality the
decoder must produce (``[Action]``); the objectives swap both to train the other paradigms.
No EOS is appended: the encoder sees its length through ``token_mask``.

Too long a prompt is an error by default (``overflow="error"``), because silently dropping the
end of an instruction changes the task. ``overflow="truncate"`` keeps the first ``max_tokens``
tokens and the first ``max_images`` images and drops any image whose marker was cut.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from uio2_robot.tokenize.images import check_rgb_image, preprocess_image
from uio2_robot.tokenize.text import TextTokenizer
from uio2_robot.tokenize.vocab import Vocabulary

PREFIX_LEN = 2
OVERFLOW_MODES = ("error", "truncate")


def encode_prompt(
    segments: Sequence[str | np.ndarray],
    vocab: Vocabulary,
    text_tokenizer: TextTokenizer,
    *,
    max_tokens: int,
    max_images: int,
    image_size: tuple[int, int],
    paradigm: str = "S",
    target_modality: str = "action",
    overflow: str = "error",
) -> dict[str, np.ndarray]:
    """Encode one prompt. Returns (names are ``EncoderInputs`` fields, without the batch dim):

    - ``tokens`` (L,) int64, ``L = max_tokens``, padded with ``vocab.pad_id``
    - ``token_mask`` (L,) bool
    - ``prompt_images`` (K, 3, Hp, Wp) float32 in [-1, 1], ``K = max_images``, zeros where unused
    - ``prompt_image_mask`` (K,) bool
    """
    if overflow not in OVERFLOW_MODES:
        raise ValueError(f"overflow must be one of {OVERFLOW_MODES}, got {overflow!r}")
    if max_tokens < PREFIX_LEN + 1:
        raise ValueError(f"max_tokens must be >= {PREFIX_LEN + 1}, got {max_tokens}")
    if not 0 <= max_images <= vocab.n_image_markers:
        raise ValueError(
            f"max_images must be in [0, {vocab.n_image_markers}] (the vocabulary's image "
            f"markers), got {max_images}"
        )
    if isinstance(segments, str | np.ndarray):
        raise ValueError(
            "prompt must be a list of segments (str or (h, w, 3) uint8 image), "
            f"got a bare {type(segments).__name__}"
        )

    ids: list[int] = [vocab.paradigm_id(paradigm), vocab.modality_id(target_modality)]
    images: list[np.ndarray] = []
    for i, seg in enumerate(segments):
        if isinstance(seg, str):
            ids.extend(text_tokenizer.encode(seg))
        elif isinstance(seg, np.ndarray):
            check_rgb_image(seg, f"prompt segment {i}")
            k = len(images)
            if k >= max_images:
                if overflow == "error":
                    n_images = sum(isinstance(s, np.ndarray) for s in segments)
                    raise ValueError(
                        f"prompt has {n_images} images but at most max_images={max_images} fit "
                        "(raise max_prompt_images or use overflow='truncate')"
                    )
                continue
            ids.append(vocab.image_marker_id(k))
            images.append(seg)
        else:
            raise ValueError(
                f"prompt segment {i} must be a str or an (h, w, 3) uint8 numpy image, "
                f"got {type(seg).__name__}"
            )

    if len(ids) > max_tokens:
        if overflow == "error":
            raise ValueError(
                f"prompt is {len(ids)} tokens (incl. {PREFIX_LEN} prefix) but max_tokens is "
                f"{max_tokens} (raise max_prompt_tokens or use overflow='truncate')"
            )
        ids = ids[:max_tokens]
        kept = set(ids)
        images = [im for k, im in enumerate(images) if vocab.image_marker_id(k) in kept]

    tokens = np.full((max_tokens,), vocab.pad_id, dtype=np.int64)
    tokens[: len(ids)] = ids
    token_mask = np.zeros((max_tokens,), dtype=bool)
    token_mask[: len(ids)] = True
    hp, wp = image_size
    prompt_images = np.zeros((max_images, 3, hp, wp), dtype=np.float32)
    prompt_image_mask = np.zeros((max_images,), dtype=bool)
    for k, img in enumerate(images):
        prompt_images[k] = preprocess_image(img, (hp, wp), what=f"prompt image {k}")
        prompt_image_mask[k] = True
    return {
        "tokens": tokens,
        "token_mask": token_mask,
        "prompt_images": prompt_images,
        "prompt_image_mask": prompt_image_mask,
    }


def describe_tokens(tokens: np.ndarray, vocab: Vocabulary, text_tokenizer: TextTokenizer) -> str:
    """Readable rendering of a token row (text decoded, specials by name); for debugging."""
    out: list[str] = []
    run: list[int] = []
    for t in np.asarray(tokens).reshape(-1).tolist():
        if vocab.is_text(t):
            run.append(t)
            continue
        if run:
            out.append(text_tokenizer.decode(run))
            run = []
        out.append(vocab.token_name(t))
    if run:
        out.append(text_tokenizer.decode(run))
    return "".join(out)
