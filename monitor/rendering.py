"""The one place that renders templates. HTML is autoescaped: every mention is text from a possibly hostile stranger."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

_ENV = Environment(
    loader=PackageLoader("monitor", "templates"),
    autoescape=select_autoescape(["html", "htm", "xml"], default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(template: str, **context: object) -> str:
    """Render a template from monitor/templates with CONTEXT."""
    return _ENV.get_template(template).render(**context)
