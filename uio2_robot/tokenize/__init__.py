"""Tokenizers and the numpy Processor: vocabulary, text, action bins, prompts, observations.

numpy and OpenCV only (never torch): the ONNX runtime policy runs this code in a process
without torch.
"""

from uio2_robot.tokenize.actions import ActionTokenizer
from uio2_robot.tokenize.images import preprocess_image
from uio2_robot.tokenize.processor import Processor
from uio2_robot.tokenize.prompt import PREFIX_LEN, encode_prompt
from uio2_robot.tokenize.text import (
    ByteTokenizer,
    SentencePieceTokenizer,
    TextTokenizer,
    make_text_tokenizer,
    text_tokenizer_from_dict,
)
from uio2_robot.tokenize.vocab import Vocabulary

__all__ = [
    "PREFIX_LEN",
    "ActionTokenizer",
    "ByteTokenizer",
    "Processor",
    "SentencePieceTokenizer",
    "TextTokenizer",
    "Vocabulary",
    "encode_prompt",
    "make_text_tokenizer",
    "preprocess_image",
    "text_tokenizer_from_dict",
]
