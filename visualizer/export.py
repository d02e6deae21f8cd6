"""`python -m visualizer --export DIR`: the server's pages as self-contained HTML files."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from visualizer import attention, catalog, compute, pages, results


def export_site(out_dir: str | Path, names: list[str], results_dir: str | Path | None = None,
                input_size: int | None = None, progress: Callable[[str], None] = lambda line: None) -> list[Path]:
    """Write index, model, attention and results pages for `names` into `out_dir`; returns the files written."""
    from reports import atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sizes = {name: catalog.resolve_size(name, None if input_size is None else str(input_size)) for name in names}
    attention_pages: dict[str, str] = {}
    model_data = {}
    for name in names:
        size = sizes[name]
        progress(f"{name} at {size}x{size}: layer trees, then per-layer parity")
        torch_tree = compute.tree_json("torch", name, size)
        flax_tree = compute.tree_json("flax", name, size)
        model_data[name] = (torch_tree, flax_tree, compute.side_rows(name, torch_tree, flax_tree),
                            compute.parity_json(name, size))
    attention_names = [n for n in names if attention.family_has_attention(n)]
    links = pages.export_links(names, attention_names, results=results_dir is not None)
    written = []

    def write(file_name: str, text: str) -> None:
        path = out / file_name
        atomic.write_text(path, text)
        written.append(path)
        progress(str(path))

    write("index.html", pages.index_page(links, lambda n: n in attention_names))
    for name in names:
        torch_tree, flax_tree, side, parity = model_data[name]
        write(f"model-{name}.html", pages.model_page(
            links, name, sizes[name], "side", pages.DEFAULT_DEPTH, torch_tree, flax_tree, side, parity, parity_url=None,
            sizes=[sizes[name]], attention_link=links.attention(name, None)))
    for name in attention_names:
        maps = attention.compute_maps(name, sizes[name], "torch", attention.sample_image(),
                                      "the bundled sample photograph (matplotlib's grace_hopper.jpg)")
        view = attention.attention_view(maps, None, None)
        attention_pages[name] = pages.render(
            "attention.html", links, title=f"attention · {name}", model=name, size=sizes[name], framework="torch",
            framework_label="PyTorch", view=view, choices=[name], sizes=[sizes[name]], action="", image_param="sample",
            upload_action="", sample_link="", head_links=None, model_link=links.model(name, None, None),
            max_upload_mib=attention.MAX_UPLOAD_BYTES // 2**20)
        write(f"attention-{name}.html", attention_pages[name])
    if results_dir is not None:
        root = Path(results_dir)
        view = results.results_view(root, results.folder_files(root))
        write("results.html", pages.render("results.html", links, title="Results", configured=True, selected=None,
                                           view=view, folder_label=root.name + "/", file_links=None))
    return written
