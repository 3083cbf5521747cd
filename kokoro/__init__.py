"""kokoro — the torch-free domain core shared by training, convert, bot and evaluation."""

from .chat_formats import FORMATS, ChatFormat, TemplateError, get_format
from .dataset import DataError, Dialogue, Turn, load, load_dialogue, load_dir, merge_turns, resolve_data_dir
from .items import FLAGS, ITEM_KEYS, ITEMS, total_score

__all__ = [
    "FORMATS",
    "ChatFormat",
    "TemplateError",
    "get_format",
    "DataError",
    "Dialogue",
    "Turn",
    "load",
    "load_dialogue",
    "load_dir",
    "merge_turns",
    "resolve_data_dir",
    "FLAGS",
    "ITEMS",
    "ITEM_KEYS",
    "total_score",
]
__version__ = "0.1.0"
