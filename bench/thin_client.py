"""A browser that draws nothing: a client of Streamlit's own websocket protocol, for the class
bench (bench/class_load.py --clients thin). Twenty Chromium pages on one core of the bench machine
saturate it, and the bench then times them; a thin client costs the server what a student's
browser costs it (the same messages), and its own machine next to nothing.

It speaks as Streamlit's frontend (1.67) does: it connects to /_stcore/stream with the subprotocol
"streamlit" and a placeholder token, asks for the page's first run, keeps the element tree the
deltas build (replacing the node at each delta path; a run that finishes clears the elements it
did not send again), the ForwardMsg cache (messages sent again by reference), the page's hash and
its query string, and each widget's value, which it sends back with every rerun. What it sees is
the latest finished run, as a `Page`.

    client = ThinClient(url)
    await client.open()
    await client.wait_for(lambda page: page.has_text("Stopped after"))
    client.set_value("Prompt", "The cats were")
    await client.rerun()
    await client.click("Generate")
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from html.parser import HTMLParser
from typing import Any

import streamlit
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Block_pb2 import Block
from streamlit.proto.ClientState_pb2 import ClientState, ContextInfo
from streamlit.proto.Delta_pb2 import Delta
from streamlit.proto.Element_pb2 import Element
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg, ForwardMsgMetadata
from streamlit.proto.NumberInput_pb2 import NumberInput
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import ClientConnection, connect

PROTOCOL_OF = "1.67"  # the Streamlit release (major.minor) whose frontend this client speaks as
STREAM_PATH = "/_stcore/stream"
# The frontend's subprotocol list: "streamlit", then an auth token (this placeholder without one).
SUBPROTOCOLS = ("streamlit", "PLACEHOLDER_AUTH_TOKEN")
CONTEXT = ContextInfo(timezone="UTC", timezone_offset=0, locale="en-US", is_embedded=False,
                      color_scheme="light")
TEXT_FIELDS = {"markdown": "body", "alert": "body", "heading": "body", "text": "body", "code": "code_text"}
_RUN_ENDS = (ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY)


# --- the widgets' values, as the frontend keeps and sends them ---

@dataclass(frozen=True)
class _Codec:
    """How the frontend reads a kind of widget: the WidgetState field it sends, the value the
    server set (`set_value`) and the widget's default, each from the element (None: no value)."""

    field: Callable[[Any], str]
    current: Callable[[Any], Any]
    default: Callable[[Any], Any]


def _optional(widget: Any, name: str) -> Any:
    return getattr(widget, name) if widget.HasField(name) else None


def _option(widget: Any) -> str | None:
    return widget.options[widget.default] if widget.HasField("default") and widget.options else None


def _slider_default(slider: Any) -> list[Any]:
    """A slider's default; a select slider's as its options (the element holds their indices)."""
    return [slider.options[int(i)] for i in slider.default] if slider.options else list(slider.default)


def _slider_current(slider: Any) -> list[Any]:
    if not slider.options:
        return list(slider.value)
    return list(slider.raw_value) or _slider_default(slider)


def _text(field_name: str) -> _Codec:
    return _Codec(lambda _: field_name, lambda w: _optional(w, "value"), lambda w: _optional(w, "default"))


_CHOICE = _Codec(lambda _: "string_value", lambda w: _optional(w, "raw_value"), _option)
_CODECS = {
    "text_area": _text("string_value"),
    "text_input": _text("string_value"),
    "number_input": _Codec(lambda w: "int_value" if w.data_type == NumberInput.INT else "double_value",
                           lambda w: _optional(w, "value"), lambda w: _optional(w, "default")),
    "checkbox": _Codec(lambda _: "bool_value", lambda w: w.value, lambda w: w.default),
    "selectbox": _CHOICE,
    "radio": _CHOICE,
    "slider": _Codec(lambda w: "string_array_value" if w.options else "double_array_value", _slider_current,
                     _slider_default),
}
BUTTONS = ("button", "download_button")  # they send a trigger when pressed, and only then


def widget_state(widget_id: str, field_name: str, value: Any) -> WidgetState:
    """A WidgetState with `value` in the field `field_name` (e.g. "string_value"); None leaves it
    empty, as the frontend sends a widget with no value (a selectbox with nothing picked)."""
    state = WidgetState(id=widget_id)
    if value is None:
        return state
    if field_name.endswith("_array_value"):
        getattr(state, field_name).data.extend(value)
    else:
        setattr(state, field_name, int(value) if field_name == "int_value" else value)
    return state


# --- what the page shows ---

class _ClassText(HTMLParser):
    """The text inside the first element of a CSS class (<br> as a line break), as innerText has it."""

    VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
                      "track", "wbr"})

    def __init__(self, css_class: str) -> None:
        super().__init__()
        self.css_class, self.depth, self.parts = css_class, 0, []
        self.found = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            self.parts += ["\n"] if tag == "br" and self.depth else []
        elif self.depth:
            self.depth += 1
        elif not self.found and self.css_class in (dict(attrs).get("class") or "").split():
            self.depth, self.found = 1, True

    def handle_endtag(self, tag: str) -> None:
        if self.depth and tag not in self.VOID:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.parts.append(data)


def html_class_text(html: str, css_class: str) -> str | None:
    """The text of the first element of class `css_class` in `html`, None when there is none."""
    parser = _ClassText(css_class)
    parser.feed(html)
    parser.close()
    return "".join(parser.parts) if parser.found else None


def kind(element: Element) -> str:
    return element.WhichOneof("type") or ""


def label(element: Element) -> str:
    return getattr(getattr(element, kind(element)), "label", "")


def text(element: Element) -> str:
    """The text of a text element (markdown, caption, alert, heading, code), else ""."""
    name = TEXT_FIELDS.get(kind(element))
    return getattr(getattr(element, kind(element)), name) if name else ""


@dataclass(frozen=True)
class Page:
    """The elements of a finished run, in page order (main, then sidebar), and when it finished."""

    elements: tuple[Element, ...] = ()
    finished_at: float = 0.0  # time.perf_counter() when its script_finished arrived

    def of_kind(self, name: str) -> list[Element]:
        return [e for e in self.elements if kind(e) == name]

    def text_with(self, part: str) -> str | None:
        """The text of the first element whose text holds `part`, None if none does."""
        return next((text(e) for e in self.elements if part in text(e)), None)

    def has_text(self, part: str) -> bool:
        return self.text_with(part) is not None

    def widget(self, name: str) -> Element:
        """The widget labelled `name` (KeyError if none)."""
        for element in self.elements:
            if label(element) == name and kind(element) in (*_CODECS, *BUTTONS):
                return element
        raise KeyError(f"no widget labelled {name!r} on the page")

    def value(self, name: str) -> Any:
        """The value the server gave the widget labelled `name` (its default if it set none)."""
        element = self.widget(name)
        widget, codec = getattr(element, kind(element)), _CODECS[kind(element)]
        return codec.current(widget) if widget.set_value else codec.default(widget)

    @cached_property
    def strip_text(self) -> str | None:
        """The text of the last token strip (markdown with an element of class tok-strip)."""
        strips = [html_class_text(text(e), "tok-strip") for e in self.of_kind("markdown")
                  if "tok-strip" in text(e)]
        strips = [s for s in strips if s is not None]
        return strips[-1] if strips else None


# --- the element tree, as the frontend's AppRoot keeps it ---

@dataclass(eq=False)
class _ElementNode:
    element: Element | None  # None: the slot of a transient (a spinner), dropped when its run ends
    run_id: str
    fragment_id: str = ""


@dataclass(eq=False)
class _BlockNode:
    block: Block
    run_id: str
    fragment_id: str = ""
    children: list[_ElementNode | _BlockNode] = field(default_factory=list)


_Node = _ElementNode | _BlockNode


def _empty_block(run_id: str = "") -> _BlockNode:
    return _BlockNode(Block(allow_empty=True), run_id)


def _get_at(root: _BlockNode, path: Sequence[int]) -> _Node | None:
    node: _Node = root
    for index in path:
        if not isinstance(node, _BlockNode) or index >= len(node.children):
            return None
        node = node.children[index]
    return node


def _set_at(root: _BlockNode, path: Sequence[int], node: _Node, run_id: str) -> None:
    """Put `node` at `path` (replacing, or appending one past the last child); every block on the
    way is marked as sent in this run, as the frontend's setIn does."""
    block = root
    for index in path[:-1]:
        block.run_id = run_id
        child = block.children[index]
        if not isinstance(child, _BlockNode):
            raise ValueError(f"delta path {list(path)} goes through an element")
        block = child
    block.run_id = run_id
    if path[-1] == len(block.children):
        block.children.append(node)
    else:
        block.children[path[-1]] = node


def _clear_stale(node: _Node, run_id: str, fragments: Sequence[str],
                 in_fragment: bool = False) -> _Node | None:
    """`node` without what the run `run_id` did not send (None if that is all of it). A fragment's
    run clears only inside the fragments it ran (the frontend's ClearStaleNodeVisitor)."""
    if isinstance(node, _ElementNode):
        if node.element is None:
            return None
        keep = kind(node.element) == "toast" or node.run_id == run_id
        return node if keep or (fragments and (not node.fragment_id or not in_fragment)) else None
    if fragments:
        if in_fragment and node.run_id != run_id:
            return None
        in_fragment = in_fragment or (node.fragment_id in fragments and node.run_id == run_id)
    elif node.run_id != run_id:
        return None
    kept = (_clear_stale(child, run_id, fragments, in_fragment) for child in node.children)
    node.children = [child for child in kept if child is not None]
    node.run_id = run_id
    return node


def _kept_children(old: _Node | None, block: Block) -> list[_Node]:
    """A block that replaces one of the same type keeps its children (and so their widgets)."""
    if isinstance(old, _BlockNode) and old.block.WhichOneof("type") == block.WhichOneof("type"):
        return old.children
    return []


def _elements(node: _Node) -> Iterator[Element]:
    if isinstance(node, _ElementNode):
        if node.element is not None:
            yield node.element
        return
    for child in node.children:
        yield from _elements(child)


# --- the ForwardMsg cache ---

class _MessageCache:
    """Cacheable messages by hash, so the server may send a reference instead: the frontend's
    ForwardMsgCache. Each rerun lists the hashes held; an entry not used for `max_age` finished
    runs is dropped."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[bytes, str, int]] = {}  # hash: (message, fragment id, last run)
        self._runs = 0

    def resolve(self, msg: ForwardMsg, data: bytes) -> ForwardMsg:
        """The message itself, or the cached one a reference points to, with the reference's metadata."""
        if msg.WhichOneof("type") == "ref_hash":
            cached, fragment_id, _ = self._entries[msg.ref_hash]
            self._entries[msg.ref_hash] = (cached, fragment_id, self._runs)
            full = ForwardMsg.FromString(cached)
            full.metadata.CopyFrom(msg.metadata)
            return full
        if msg.metadata.cacheable and msg.hash:
            self._entries[msg.hash] = (data, msg.delta.fragment_id, self._runs)
        return msg

    def hashes(self) -> list[str]:
        return list(self._entries)

    def run_finished(self, max_age: int, fragments: Sequence[str]) -> None:
        self._runs += 1
        for key, (_, fragment_id, last) in list(self._entries.items()):
            in_scope = not fragments or fragment_id in fragments
            if in_scope and self._runs - last > max_age:
                del self._entries[key]


# --- the client ---

def check_streamlit_version(installed: str | None = None) -> None:
    """A RuntimeError unless the installed Streamlit (`installed`: its version string, default the
    one imported) is the release whose protocol this client speaks: another release may change the
    messages, and the client would then measure something a browser does not do."""
    version = streamlit.__version__ if installed is None else installed
    if version.split(".")[:2] != PROTOCOL_OF.split("."):
        raise RuntimeError(
            f"bench/thin_client.py speaks the protocol of Streamlit {PROTOCOL_OF}'s frontend, and Streamlit "
            f"{version} is installed. Install the version requirements.txt pins (make test does), or bring "
            "the client up to this release's frontend (its docstring says what it copies) and change "
            "PROTOCOL_OF.")


class ThinClient:
    """One browser session of the app at `url`, drawing nothing (see the module's docstring).
    Use it from one asyncio event loop; `page` is the latest finished run."""

    def __init__(self, url: str) -> None:
        check_streamlit_version()
        self.url = url
        self.page = Page()
        self._root = _BlockNode(Block(), "", children=[_empty_block() for _ in range(4)])
        self._widgets: dict[str, WidgetState] = {}  # by widget id, as the frontend's WidgetStateManager
        self._cache = _MessageCache()
        self._run_id = ""  # the run the deltas now arriving belong to (the last new_session's)
        self._page_hash = ""  # the page's script hash ("" until the server names it)
        self._query = ""
        self._max_age = 0
        self._changed = asyncio.Condition()  # notified when a run finishes or the connection ends
        self._socket: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed = False
        self._error: Exception | None = None  # what ended the reading, if not the connection's close
        self.last_markdown = ""  # the body of the last markdown element to arrive (a live redraw's)
        self.last_received = ("", time.monotonic())  # the last message's type, and when it came

    async def open(self) -> None:
        """Connect and ask for the page's first run, as a browser does on loading it."""
        stream = "ws" + self.url.removeprefix("http") + STREAM_PATH
        # no keepalive pings of its own, as a browser sends none
        self._socket = await connect(stream, subprotocols=list(SUBPROTOCOLS), origin=self.url,
                                     max_size=None, ping_interval=None)
        self._reader = asyncio.create_task(self._read(self._socket))
        await self.rerun()

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            await self._reader

    def set_value(self, name: str, value: Any) -> None:
        """Give the widget labelled `name` this value, sent with the next rerun (the frontend
        sends a widget's change at once: call `rerun` after)."""
        element = self.page.widget(name)
        widget = getattr(element, kind(element))
        self._widgets[widget.id] = widget_state(widget.id, _CODECS[kind(element)].field(widget), value)

    async def rerun(self, *triggers: WidgetState) -> None:
        """Ask for a run with every widget's value (and `triggers`, sent this once)."""
        client = ClientState(query_string=self._query, page_script_hash=self._page_hash, page_name="",
                             cached_message_hashes=self._cache.hashes(), context_info=CONTEXT)
        client.context_info.url = self.url + "/"
        client.widget_states.SetInParent()  # sent even when empty, as the frontend does
        client.widget_states.widgets.extend([*self._widgets.values(), *triggers])
        if self._socket is None:
            raise RuntimeError("open() the client first")
        await self._socket.send(BackMsg(rerun_script=client).SerializeToString())

    async def click(self, name: str) -> float:
        """Press the button labelled `name`; returns time.perf_counter() once the press is sent."""
        element = self.page.widget(name)
        await self.rerun(WidgetState(id=getattr(element, kind(element)).id, trigger_value=True))
        return time.perf_counter()

    async def wait_for(self, check: Callable[[Page], bool]) -> Page:
        """The first finished run (this one, or one to come) for which `check` holds."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._closed or check(self.page))
        if not check(self.page):
            raise ConnectionError(f"the connection to {self.url} closed") from self._error
        return self.page

    async def wait_for_markdown(self, check: Callable[[str], bool]) -> str:
        """The first markdown element to arrive (in a run still going, as a live redraw draws it)
        whose body `check` accepts: this one, or one to come."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._closed or check(self.last_markdown))
        if not check(self.last_markdown):
            raise ConnectionError(f"the connection to {self.url} closed") from self._error
        return self.last_markdown

    async def _read(self, socket: ClientConnection) -> None:
        try:
            async for data in socket:
                msg = self._cache.resolve(ForwardMsg.FromString(data), data)
                self.last_received = (msg.WhichOneof("type") or "", time.monotonic())
                markdown = self.last_markdown
                if self._handle(msg) or self.last_markdown is not markdown:
                    async with self._changed:
                        self._changed.notify_all()
        except Exception as err:  # a message this client cannot apply: its waiters raise it
            self._error = err
        finally:
            self._closed = True
            async with self._changed:
                self._changed.notify_all()

    def _handle(self, msg: ForwardMsg) -> bool:
        """Apply one message; True when it finished a run (`page` is then that run's)."""
        match msg.WhichOneof("type"):
            case "new_session":
                self._run_id = msg.metadata.run.script_run_id
                self._max_age = msg.new_session.config.max_cached_message_age
                self._page_hash = msg.new_session.page_script_hash or self._page_hash
            case "navigation":  # with st.navigation, the page the run shows
                self._page_hash = msg.navigation.page_script_hash
            case "page_info_changed":  # the address's query string, which later reruns send
                self._query = msg.page_info_changed.query_string
            case "delta":
                self._apply(msg.delta, msg.metadata)
            case "script_finished":
                return self._finish(msg.script_finished, msg.metadata)
        return False

    def _apply(self, delta: Delta, metadata: ForwardMsgMetadata) -> None:
        path, run = list(metadata.delta_path), self._run_id
        old = _get_at(self._root, path)
        match delta.WhichOneof("type"):
            case "new_element":
                node: _Node = _ElementNode(delta.new_element, run, delta.fragment_id)
                self._track(delta.new_element)
                if kind(delta.new_element) == "markdown":
                    self.last_markdown = delta.new_element.markdown.body
            case "add_block":
                block = delta.add_block
                node = _BlockNode(block, run, delta.fragment_id, _kept_children(old, block))
            case "new_transient":  # a spinner or the like: held by its slot until the run ends
                node = old or _ElementNode(None, run, delta.fragment_id)
            case _:
                return
        _set_at(self._root, path, node, run)

    def _track(self, element: Element) -> None:
        """Register a widget as the frontend does when it draws it: the value it already holds,
        else the element's; the element's whenever the server set it (`set_value`). (A browser
        draws a popover's widgets only once it is opened; this client registers them at once.)"""
        codec = _CODECS.get(kind(element))
        if codec is None:  # not a widget, or a button
            return
        widget = getattr(element, kind(element))
        if widget.set_value:
            value = codec.current(widget)
        elif widget.id in self._widgets:
            return
        else:
            value = codec.default(widget)
        self._widgets[widget.id] = widget_state(widget.id, codec.field(widget), value)

    def _finish(self, status: int, metadata: ForwardMsgMetadata) -> bool:
        """A run ended: if it ran to its end, and is the current run or a fragment's, clear what it
        did not send and forget the widgets that are gone (App.handleScriptFinished)."""
        run = metadata.run if metadata.HasField("run") else None
        if status not in _RUN_ENDS or run is None or not run.script_run_id:
            return False
        self._cache.run_finished(self._max_age, run.fragment_ids)
        if not run.fragment_ids and run.script_run_id != self._run_id:  # a run since started
            return False
        for index, child in enumerate(self._root.children):
            fresh = _clear_stale(child, run.script_run_id, run.fragment_ids)
            self._root.children[index] = fresh if fresh is not None else _empty_block(run.script_run_id)
        elements = tuple(_elements(self._root))
        shown = {getattr(getattr(e, kind(e)), "id", "") for e in elements}
        self._widgets = {key: state for key, state in self._widgets.items() if key in shown}
        self.page = Page(elements, time.perf_counter())
        return True
