"""Rebuild an SVG from an allow-list of elements, attributes and style properties.

The t-SNE maps arrive beside records by pull request and are inlined into the site, so
filtering their text for `<script` is not enough (`<x:script>`, CSS `url(//host)`, entities
...). The file is parsed as XML and a new document is built from the elements and
attributes that matplotlib's SVG output uses, each value checked; anything else refuses the
file (ValueError saying what), so a reviewer sees why instead of a silently changed map.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
MAX_SVG_BYTES = 4 * 1024 * 1024
MAX_ELEMENTS = 50_000
MAX_DEPTH = 64
"""Deepest nesting of elements (matplotlib's figures nest a few levels)."""
ELEMENTS = frozenset(
    {"svg", "title", "desc", "defs", "style", "g", "path", "use", "clipPath", "rect"}
    | {"circle", "ellipse", "line", "polyline", "polygon", "text", "tspan"}
)
_NUMBERS = re.compile(r"^[0-9eE.,+\- \t\r\n]*$")
_PATH = re.compile(r"^[0-9eE.,+\-MmLlHhVvCcSsQqTtAaZz \t\r\n]*$")
_TRANSFORM = re.compile(r"^(\s*(matrix|translate|scale|rotate|skewX|skewY)\([0-9eE.,+\- ]*\)\s*)*$")
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,80}$")
_LOCAL = re.compile(r"^#[A-Za-z_][A-Za-z0-9_.\-]{0,80}$")
_LOCAL_URL = re.compile(r"^url\(#[A-Za-z_][A-Za-z0-9_.\-]{0,80}\)$")
_PLAIN = re.compile(r"^[A-Za-z0-9 #.,%'\-]{0,300}$")
_REMOTE = re.compile(r"url\(\s*['\"]?\s*(?!#)|@import", re.IGNORECASE)
"""A CSS reference to anything but an element of the map itself."""
_LENGTH = re.compile(r"^[0-9.]+(pt|px|%)?$")
ATTRIBUTES: dict[str, re.Pattern[str]] = {
    "width": _LENGTH,
    "height": _LENGTH,
    "viewBox": _NUMBERS,
    "version": re.compile(r"^1\.1$"),
    "id": _ID,
    "d": _PATH,
    "transform": _TRANSFORM,
    "x": _NUMBERS,
    "y": _NUMBERS,
    "x1": _NUMBERS,
    "y1": _NUMBERS,
    "x2": _NUMBERS,
    "y2": _NUMBERS,
    "cx": _NUMBERS,
    "cy": _NUMBERS,
    "r": _NUMBERS,
    "rx": _NUMBERS,
    "ry": _NUMBERS,
    "points": _NUMBERS,
    "clip-path": _LOCAL_URL,
    "type": re.compile(r"^text/css$"),
    f"{{{XLINK_NS}}}href": _LOCAL,
    "href": _LOCAL,
}
STYLE_PROPERTIES = frozenset(
    {"fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-opacity"}
    | {"stroke-linejoin", "stroke-linecap", "stroke-dasharray", "stroke-dashoffset"}
    | {"stroke-miterlimit", "opacity", "font", "font-size", "font-family", "font-style"}
    | {"font-weight", "text-anchor", "dominant-baseline", "clip-path"}
)


def _style(text: str) -> str:
    """CSS declarations `prop: value; ...`, each checked, written back normalised."""
    out = []
    for declaration in text.split(";"):
        if not declaration.strip():
            continue
        name, colon, value = (part.strip() for part in declaration.partition(":"))
        if not colon or name not in STYLE_PROPERTIES:
            raise ValueError(f"style property {name!r} is not allowed")
        if not (_PLAIN.fullmatch(value) or _LOCAL_URL.fullmatch(value)):
            raise ValueError(f"style value {value[:40]!r} of {name!r} is not allowed")
        out.append(f"{name}: {value}")
    return "; ".join(out)


def _stylesheet(text: str) -> str:
    """A `<style>` element: rules of a selector from a closed set and checked declarations."""
    out = []
    for selector, body in re.findall(r"\s*([^{}]*)\{([^{}]*)\}", text):
        if not re.fullmatch(r"\*|[a-z]+|#[A-Za-z0-9_-]+|\.[A-Za-z0-9_-]+", selector.strip()):
            raise ValueError(f"style selector {selector.strip()[:40]!r} is not allowed")
        out.append(f"{selector.strip()}{{{_style(body)}}}")
    if re.sub(r"\s*[^{}]*\{[^{}]*\}", "", text).strip():
        raise ValueError("the style sheet holds more than rules")
    return "".join(out)


def _local(tag: str) -> str:
    if not tag.startswith(f"{{{SVG_NS}}}"):
        raise ValueError(f"element {tag!r} is not an SVG element")
    name = tag[len(SVG_NS) + 2 :]
    if name not in ELEMENTS:
        raise ValueError(f"element '{name}' is not allowed")
    return name


def _copy(source: ET.Element, count: list[int], depth: int = 1) -> ET.Element:
    count[0] += 1
    if count[0] > MAX_ELEMENTS:
        raise ValueError(f"over {MAX_ELEMENTS} elements")
    if depth > MAX_DEPTH:
        raise ValueError(f"elements nested over {MAX_DEPTH} deep")
    name = _local(source.tag)
    element = ET.Element(f"{{{SVG_NS}}}{name}")
    for key, value in source.attrib.items():
        if key == "style":
            element.set("style", _style(value))
            continue
        pattern = ATTRIBUTES.get(key)
        if pattern is None or not pattern.fullmatch(value):
            shown = key.replace(f"{{{XLINK_NS}}}", "xlink:")
            raise ValueError(f"attribute {shown!r}={value[:40]!r} on '{name}' is not allowed")
        element.set(key, value)
    text = source.text or ""
    if name == "style" and len(source):
        # CSS after a child (its tail) would be copied unchecked: a style sheet is text only
        raise ValueError("a <style> element holds CSS rules only, no elements")
    element.text = _stylesheet(text) if name == "style" else text
    for child in source:
        copied = _copy(child, count, depth + 1)
        copied.tail = child.tail
        element.append(copied)
    return element


def clean_svg(data: bytes) -> bytes:
    """The SVG rebuilt from allowed parts only; ValueError naming the first part that is not."""
    if len(data) > MAX_SVG_BYTES:
        raise ValueError(f"over {MAX_SVG_BYTES // (1024 * 1024)} MiB")
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise ValueError("a DOCTYPE or entity declaration is not allowed")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise ValueError(f"not well-formed XML ({e})") from e
    if root.tag != f"{{{SVG_NS}}}svg":
        raise ValueError("the root element is not <svg>")
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", XLINK_NS)
    tree = _copy(root, [0])
    text = ET.tostring(tree, encoding="unicode")
    if _REMOTE.search(text):
        # Every part was checked; this is the last word: nothing that fetches may leave here.
        raise ValueError("a reference to another document (url() or @import) is not allowed")
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + text + "\n").encode("utf-8")
