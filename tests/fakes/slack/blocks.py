"""A modest Block Kit validator: the limits SPECS.md section 6 lists, reported the way Slack
reports them (``invalid_blocks`` with ``errors`` carrying a JSON pointer).

It checks what remediation messages use (section, actions, context, header, divider;
buttons and confirm dialogs); other block and element types only need a ``type``.
"""

from __future__ import annotations

from typing import Any

MAX_BLOCKS = 50
MAX_ACTIONS_ELEMENTS = 25
MAX_CONTEXT_ELEMENTS = 10
MAX_SECTION_FIELDS = 10
TEXT_TYPES = ("plain_text", "mrkdwn")
STYLES = ("primary", "danger")


class _Checker:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, message: str, pointer: str) -> None:
        self.errors.append(f"{message} [json-pointer:{pointer}]")

    def text(
        self,
        obj: Any,
        pointer: str,
        *,
        max_len: int,
        plain_only: bool = False,
        required: bool = True,
    ) -> None:
        if obj is None:
            if required:
                self.fail("must provide an object", pointer)
            return
        if not isinstance(obj, dict):
            self.fail("must be an object", pointer)
            return
        allowed = ("plain_text",) if plain_only else TEXT_TYPES
        if obj.get("type") not in allowed:
            self.fail(f"must be one of {list(allowed)}", f"{pointer}/type")
        text = obj.get("text")
        if not isinstance(text, str) or not text:
            self.fail("must be a non-empty string", f"{pointer}/text")
        elif len(text) > max_len:
            self.fail(f"must be less than {max_len + 1} characters", f"{pointer}/text")

    def string(self, value: Any, pointer: str, *, max_len: int, required: bool = False) -> None:
        if value is None:
            if required:
                self.fail("must provide a string", pointer)
            return
        if not isinstance(value, str) or not value:
            self.fail("must be a non-empty string", pointer)
        elif len(value) > max_len:
            self.fail(f"must be less than {max_len + 1} characters", pointer)

    def style(self, value: Any, pointer: str) -> None:
        if value is not None and value not in STYLES:
            self.fail(f"must be one of {list(STYLES)}", pointer)

    def confirm(self, obj: Any, pointer: str) -> None:
        if not isinstance(obj, dict):
            self.fail("must be an object", pointer)
            return
        self.text(obj.get("title"), f"{pointer}/title", max_len=100, plain_only=True)
        self.text(obj.get("text"), f"{pointer}/text", max_len=300)
        self.text(obj.get("confirm"), f"{pointer}/confirm", max_len=30, plain_only=True)
        self.text(obj.get("deny"), f"{pointer}/deny", max_len=30, plain_only=True)
        self.style(obj.get("style"), f"{pointer}/style")

    def element(self, obj: Any, pointer: str, action_ids: set[str]) -> None:
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            self.fail("must be an object with a type", pointer)
            return
        action_id = obj.get("action_id")
        self.string(action_id, f"{pointer}/action_id", max_len=255)
        if isinstance(action_id, str):
            if action_id in action_ids:
                self.fail("action_id must be unique within the block", f"{pointer}/action_id")
            action_ids.add(action_id)
        if obj["type"] == "button":
            self.text(obj.get("text"), f"{pointer}/text", max_len=75, plain_only=True)
            self.string(obj.get("value"), f"{pointer}/value", max_len=2000)
            self.string(obj.get("url"), f"{pointer}/url", max_len=3000)
            self.style(obj.get("style"), f"{pointer}/style")
        if "confirm" in obj:
            self.confirm(obj["confirm"], f"{pointer}/confirm")

    def block(self, obj: Any, pointer: str, block_ids: set[str]) -> None:
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            self.fail("must be an object with a type", pointer)
            return
        block_id = obj.get("block_id")
        self.string(block_id, f"{pointer}/block_id", max_len=255)
        if isinstance(block_id, str):
            if block_id in block_ids:
                self.fail("block_id must be unique within the message", f"{pointer}/block_id")
            block_ids.add(block_id)
        kind = obj["type"]
        action_ids: set[str] = set()
        if kind == "section":
            fields = obj.get("fields")
            self.text(obj.get("text"), f"{pointer}/text", max_len=3000, required=fields is None)
            if fields is not None:
                if not isinstance(fields, list) or len(fields) > MAX_SECTION_FIELDS:
                    self.fail(
                        f"must be a list of at most {MAX_SECTION_FIELDS}", f"{pointer}/fields"
                    )
                else:
                    for i, item in enumerate(fields):
                        self.text(item, f"{pointer}/fields/{i}", max_len=2000)
            if "accessory" in obj:
                self.element(obj["accessory"], f"{pointer}/accessory", action_ids)
        elif kind == "actions":
            elements = obj.get("elements")
            if not isinstance(elements, list) or not elements:
                self.fail("must provide a non-empty list", f"{pointer}/elements")
            elif len(elements) > MAX_ACTIONS_ELEMENTS:
                self.fail(
                    f"must be a list of at most {MAX_ACTIONS_ELEMENTS} items",
                    f"{pointer}/elements",
                )
            else:
                for i, item in enumerate(elements):
                    self.element(item, f"{pointer}/elements/{i}", action_ids)
        elif kind == "context":
            elements = obj.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_CONTEXT_ELEMENTS:
                self.fail(
                    f"must be a list of 1 to {MAX_CONTEXT_ELEMENTS} items", f"{pointer}/elements"
                )
        elif kind == "header":
            self.text(obj.get("text"), f"{pointer}/text", max_len=150, plain_only=True)


def validate_blocks(blocks: Any) -> list[str]:
    """Slack-style error strings for ``blocks`` (empty: valid)."""
    checker = _Checker()
    if not isinstance(blocks, list):
        checker.fail("must be an array", "/blocks")
        return checker.errors
    if len(blocks) > MAX_BLOCKS:
        checker.fail(f"must be a list of at most {MAX_BLOCKS} items", "/blocks")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        checker.block(block, f"/blocks/{i}", block_ids)
    return checker.errors


def find_action(blocks: list[Any], action_id: str) -> tuple[str | None, dict[str, Any]] | None:
    """``(block_id, element)`` of the interactive element with ``action_id``, or ``None``."""
    for block in blocks:
        if not isinstance(block, dict):
            continue
        candidates = list(block.get("elements") or [])
        if isinstance(block.get("accessory"), dict):
            candidates.append(block["accessory"])
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return block.get("block_id"), element
    return None
