"""The docs are plain Markdown in the repository, and every relative link resolves."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    anchors = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue  # an absolute URL
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        missing_anchor = bool(anchor) and resolved.suffix == ".md"
        if not resolved.exists() or (missing_anchor and anchor not in _anchors(resolved)):
            broken.append(target)
    assert broken == []


def test_the_quickstart_has_exactly_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    assert [line for line in block.splitlines() if line.strip()] == ["make demo", "make test"]


QUICKSTART = ROOT / "docs" / "quickstart.md"
RENDERED = re.compile(r"""render\(request, ["']([^"']+)["']""")
HTML_BLOCK = re.compile(r"```html\n<!-- \S+/templates/(\S+) -->\n(.*?)```", re.DOTALL)


def test_every_template_the_quickstart_renders_is_shown_in_it_and_compiles():
    from django.template import engines

    text = QUICKSTART.read_text()
    shown = dict(HTML_BLOCK.findall(text))
    rendered = RENDERED.findall(text)

    assert "myapp/signup.html" in rendered
    assert [name for name in rendered if name not in shown] == []
    for source in shown.values():
        engines["django"].from_string(source)  # a syntax error raises
    assert "{% csrf_token %}" in shown["myapp/signup.html"]
