"""HTML pages, shared by the server and the static export: each page is one self-contained document.

CSS and JavaScript are inlined and data is embedded as JSON, so a page written to a file
works with nothing else; only its links differ between the two (`Links`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from importlib import resources
from typing import Any, Callable

THRESHOLD_DEFAULT = 5e-5  # validation.compare.FLOAT32_LAYER_THRESHOLD, shown before parity arrives
DEFAULT_DEPTH = 2


@dataclasses.dataclass(frozen=True)
class Links:
    """Where a page's links point: the server's routes, or the exported files."""

    index: str
    results: str | None
    model: Callable[[str, int | None, str | None], str | None]  # (model, size, view) -> URL; None: not available
    attention: Callable[[str, int | None], str | None]
    model_template: str  # for the page's script: {name}, {size}, {view} are filled in
    live: bool  # True on the server (the page may fetch data and rewrite its URL)


def server_links(results: bool) -> Links:
    """Links to the server's routes."""

    def model(name: str, size: int | None = None, view: str | None = None) -> str:
        query = "&".join(f"{k}={v}" for k, v in (("size", size), ("view", view)) if v)
        return f"/model/{name}" + (f"?{query}" if query else "")

    def attention(name: str, size: int | None = None) -> str:
        return f"/attention/{name}" + (f"?size={size}" if size else "")

    return Links(index="/", results="/results" if results else None, model=model, attention=attention,
                 model_template="/model/{name}?size={size}&view={view}", live=True)


def export_links(models: list[str], attention_models: list[str], results: bool) -> Links:
    """Links between exported files; a model that was not exported has no link."""

    def model(name: str, size: int | None = None, view: str | None = None) -> str | None:
        return f"model-{name}.html" if name in models else None

    def attention(name: str, size: int | None = None) -> str | None:
        return f"attention-{name}.html" if name in attention_models else None

    return Links(index="index.html", results="results.html" if results else None, model=model, attention=attention,
                 model_template="model-{name}.html", live=False)


@functools.lru_cache(maxsize=None)
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("visualizer", "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined)


@functools.lru_cache(maxsize=None)
def static_text(name: str) -> str:
    """A file of visualizer/static, as text (inlined into pages)."""
    return resources.files("visualizer").joinpath("static", name).read_text(encoding="utf-8")


def embed_json(data: Any) -> str:
    """`data` as JSON that is safe inside a <script> element (no '</script>' can close it)."""
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(template: str, links: Links, **context: Any) -> str:
    """The page `template` with the shared frame (style, header links)."""
    mode_note = "live server" if links.live else "static export"
    return _environment().get_template(template).render(css=static_text("style.css"), links=links,
                                                         mode_note=mode_note, **context)


def error_page(links: Links, heading: str, problem: str, fix: str = "", known: list[str] | None = None,
               what: str = "", item_links: dict[str, str] | None = None) -> str:
    """A page that says what was wrong with the request, how to fix it, and what exists."""
    return render("error.html", links, title=heading, heading=heading, problem=problem, fix=fix, known=known or [],
                  what=what, item_links=item_links or {})


def index_page(links: Links, attention_available: Callable[[str], bool]) -> str:
    """The model list, grouped by family, with the registry's figures."""
    from models import get_model_info
    from models.registry import get_family
    from visualizer.catalog import model_choices

    families: dict[str, dict[str, Any]] = {}
    for choice in model_choices():
        info = get_model_info(choice["name"])
        family = families.setdefault(info["family"], {"name": info["family"], "description": get_family(info["family"]).description,
                                                      "models": []})
        family["models"].append({
            "name": choice["name"], "test_only": choice["test_only"], "input_size": info["input_size"],
            "params": f"{info['params']:,}", "macs": f"{info['macs']:,}",
            "model_link": links.model(choice["name"], None, None),
            "attention_link": links.attention(choice["name"], None) if attention_available(choice["name"]) else None,
        })
    for family in families.values():  # smallest first, the tiny test-only variants last
        family["models"].sort(key=lambda m: (m["test_only"], get_model_info(m["name"])["params"]))
    return render("index.html", links, title="Models", families=list(families.values()))


def model_page(links: Links, name: str, size: int, view: str, depth: int, torch_tree: dict[str, Any],
               flax_tree: dict[str, Any], side: list[dict[str, Any]], parity: dict[str, Any] | None,
               parity_url: str | None, sizes: list[int], attention_link: str | None) -> str:
    """The model page: layer tree, totals, parity colours; its script renders from the embedded data."""
    from models import get_model_info
    from visualizer.catalog import model_choices

    info = get_model_info(name)
    choices = [c for c in model_choices() if links.model(c["name"], None, None)]
    data = {
        "model": name, "size": size, "view": view, "depth": depth, "threshold": THRESHOLD_DEFAULT,
        "registry": {"params": info["params"], "macs": info["macs"], "flops": info["flops"], "input_size": info["input_size"]},
        "torch": torch_tree, "flax": flax_tree, "side": side, "parity": parity, "parity_url": parity_url,
        "links": {"model_template": links.model_template, "live": links.live},
    }
    return render("model.html", links, title=name, model=name, family=info["family"], size=size, choices=choices,
                  sizes=sizes if links.live else [size], data_json=embed_json(data), js=static_text("model.js"),
                  attention_link=attention_link)
