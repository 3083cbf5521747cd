"""LINE rich menus (placeholder: filled in below)."""

from __future__ import annotations


def link_user(engine, uid: str, kind: str | None) -> None:
    return None
