"""The Flask app: routes for the model, attention and results pages, their JSON, and every bad request.

Importing this module imports Flask but neither torch nor JAX: a model page imports its
framework the first time it needs it, and what it computes is cached per (model, size,
framework). Nothing here reads a file a request names unless `results.results_file`
placed it inside the results folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, redirect, request, send_file
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from visualizer import attention, catalog, compute, pages, results
from visualizer.catalog import NotFound

FORM_OVERHEAD = 64 * 1024  # multipart boundaries and fields around an upload


class BadRequest(ValueError):
    """A request with a malformed parameter (e.g. a layer that is not a number): answered with 400."""


def create_app(results_dir: str | Path | None = None) -> Flask:
    """The visualizer app; `results_dir` is the folder the Results page reads (None: no Results page)."""
    app = Flask("visualizer", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = attention.MAX_UPLOAD_BYTES + FORM_OVERHEAD
    root = Path(results_dir) if results_dir is not None else None
    links = pages.server_links(results=root is not None)
    trees = compute.Cache()
    parities = compute.Cache()
    maps_cache = compute.Cache(max_entries=3)  # every layer's maps of one image: large for big models
    uploads = compute.Cache(max_entries=8)
    rendered_results = compute.Cache(max_entries=4)
    app.extensions["visualizer"] = {"trees": trees, "parities": parities, "maps": maps_cache, "uploads": uploads,
                                    "results_dir": root}

    def model_and_size(name: str) -> tuple[str, int]:
        catalog.resolve_model(name)
        return name, catalog.resolve_size(name, request.args.get("size"))

    def tree(framework: str, name: str, size: int) -> dict[str, Any]:
        return trees.get((framework, name, size), lambda: compute.tree_json(framework, name, size))

    def whole_number(key: str, default: int | None) -> int | None:
        value = request.args.get(key)
        if value in (None, ""):
            return default
        try:
            return int(value)
        except ValueError:
            raise BadRequest(f"{key} must be a whole number, got {value!r}") from None

    @app.get("/")
    def index() -> str:
        return pages.index_page(links, attention.family_has_attention)

    @app.get("/model/<name>")
    def model(name: str) -> str:
        name, size = model_and_size(name)
        view = catalog.resolve_choice(request.args.get("view"), catalog.VIEWS, "side", "views")
        depth = whole_number("depth", pages.DEFAULT_DEPTH)
        if depth < 0:
            raise BadRequest(f"depth must be 0 or more, got {depth}")
        torch_tree, flax_tree = tree("torch", name, size), tree("flax", name, size)
        side = trees.get(("side", name, size), lambda: compute.side_rows(name, torch_tree, flax_tree))
        key = (name, size)
        parity = parities.get(key, lambda: None) if key in parities else None
        return pages.model_page(
            links, name, size, view, depth, torch_tree, flax_tree, side, parity,
            parity_url=None if parity else f"/api/parity/{name}?size={size}", sizes=catalog.sizes_for(name),
            attention_link=links.attention(name, size) if attention.family_has_attention(name) else None,
        )

    @app.get("/api/tree/<name>")
    def api_tree(name: str) -> Response:
        name, size = model_and_size(name)
        framework = catalog.resolve_choice(request.args.get("framework"), ("torch", "flax"), "torch", "frameworks")
        return jsonify(tree(framework, name, size))

    @app.get("/api/side/<name>")
    def api_side(name: str) -> Response:
        name, size = model_and_size(name)
        torch_tree, flax_tree = tree("torch", name, size), tree("flax", name, size)
        return jsonify(trees.get(("side", name, size), lambda: compute.side_rows(name, torch_tree, flax_tree)))

    @app.get("/api/parity/<name>")
    def api_parity(name: str) -> Response:
        name, size = model_and_size(name)
        return jsonify(parities.get((name, size), lambda: compute.parity_json(name, size)))

    def attention_page(name: str, size: int, framework: str, image_param: str) -> str:
        if image_param == attention.SAMPLE_NAME:
            image, label = attention.sample_image(), "the bundled sample photograph (matplotlib's grace_hopper.jpg)"
        else:
            if image_param not in uploads:
                raise NotFound(f"no uploaded image {image_param!r} (uploads are kept for the last 8 images)",
                               [attention.SAMPLE_NAME], "images")
            image, label = uploads.get(image_param, lambda: None)
        layer, head = whole_number("layer", None), whole_number("head", None)
        maps = maps_cache.get((name, size, framework, image_param),
                              lambda: _locked_maps(name, size, framework, image, label))
        try:
            view = attention.attention_view(maps, layer, head)
        except IndexError as exc:
            known = [str(i) for i in range(len(maps["layers"]))] if layer is not None else []
            raise NotFound(str(exc), known, "layers") from None

        def query(**changes: Any) -> str:
            params = {"size": size, "framework": framework, "layer": view.get("layer"), "head": view.get("head"),
                      "image": image_param, **changes}
            return f"/attention/{name}?" + "&".join(f"{k}={v}" for k, v in params.items() if v is not None)

        attention_models = [m for m in catalog.model_names() if attention.family_has_attention(m)]
        choices = sorted(set(attention_models) | {name}, key=catalog.model_names().index)
        return pages.render(
            "attention.html", links, title=f"attention · {name}", model=name, size=size, framework=framework,
            framework_label="PyTorch" if framework == "torch" else "JAX/Flax", view=view, choices=choices,
            sizes=catalog.sizes_for(name), action=f"/attention/{name}", image_param=image_param,
            upload_action=f"/attention/{name}?size={size}&framework={framework}",
            sample_link=query(image=attention.SAMPLE_NAME, layer=None, head=None),
            head_links=[query(head=h) for h in range(view["heads"])] if view["available"] else None,
            model_link=links.model(name, size, None), max_upload_mib=attention.MAX_UPLOAD_BYTES // 2**20,
        )

    @app.get("/attention/<name>")
    def attention_get(name: str) -> str:
        name, size = model_and_size(name)
        framework = catalog.resolve_choice(request.args.get("framework"), catalog.FRAMEWORKS, "torch", "frameworks")
        return attention_page(name, size, framework, request.args.get("image") or attention.SAMPLE_NAME)

    @app.post("/attention/<name>")
    def attention_upload(name: str) -> Response:
        name, size = model_and_size(name)
        framework = catalog.resolve_choice(request.args.get("framework"), catalog.FRAMEWORKS, "torch", "frameworks")
        upload = request.files.get("image")
        if upload is None or not upload.filename:
            raise attention.BadUpload("no file was uploaded; choose an image file in the form's 'image' field")
        data = upload.stream.read(attention.MAX_UPLOAD_BYTES + 1)
        image = attention.decode_image(data)
        key = attention.image_key(image)
        uploads.get(key, lambda: (image, f"your upload {upload.filename!r}"))
        return redirect(f"/attention/{name}?size={size}&framework={framework}&image={key}", code=303)

    def results_page(selected: str | None) -> str:
        if root is None:
            return pages.render("results.html", links, title="Results", configured=False, selected=None, view={},
                                folder_label="", file_links=None)
        paths = [results.results_file(root, selected)] if selected is not None else results.folder_files(root)
        signature = tuple((str(p), p.stat().st_mtime_ns) for p in paths)
        view = rendered_results.get(signature, lambda: results.results_view(root, paths))
        file_links = {run["path"]: (f"/results/run/{run['path']}", f"/results/raw/{run['path']}")
                      for run in view.get("runs", [])}
        return pages.render("results.html", links, title="Results", configured=True, selected=selected, view=view,
                            folder_label=root.name + "/", file_links=file_links)

    @app.get("/results")
    def results_all() -> str:
        return results_page(None)

    @app.get("/results/run/<path:relative>")
    def results_run(relative: str) -> str:
        return results_page(relative)

    @app.get("/results/raw/<path:relative>")
    def results_raw(relative: str) -> Response:
        if root is None:
            raise NotFound("no results folder was given (start with --results DIR)", [], "results files")
        return send_file(results.results_file(root, relative), mimetype="application/json")

    def wants_json() -> bool:
        return request.path.startswith("/api/")

    @app.errorhandler(NotFound)
    def not_found(error: NotFound) -> tuple[Any, int]:
        if wants_json():
            return jsonify({"error": error.message, "known": error.known}), 404
        item_links = {m: links.model(m, None, None) for m in error.known} if error.what == "models" else None
        fix = {"models": "Pick one of the models below.", "sizes": "Pick one of the sizes below (or another the model accepts, "
               f"up to {catalog.MAX_INPUT_SIZE}).", "results files": "Pick one of the files below."}.get(error.what, "")
        return pages.error_page(links, "Not found", error.message, fix, error.known, error.what, item_links), 404

    @app.errorhandler(attention.BadUpload)
    def bad_upload(error: attention.BadUpload) -> tuple[str, int]:
        return pages.error_page(links, "Bad upload", str(error)), 400

    @app.errorhandler(BadRequest)
    def bad_request(error: BadRequest) -> tuple[Any, int]:
        if wants_json():
            return jsonify({"error": str(error)}), 400
        return pages.error_page(links, "Bad request", str(error)), 400

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge) -> tuple[str, int]:
        limit = attention.MAX_UPLOAD_BYTES // 2**20
        return pages.error_page(links, "Bad upload", f"the upload is over the {limit} MiB limit; upload a smaller image"), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Any, int]:
        if error.code == 404:
            known = catalog.model_names()
            problem = f"no page at {request.path}; pages: /, /model/<model>, /attention/<model>, /results"
            if wants_json():
                return jsonify({"error": problem, "known": known}), 404
            return pages.error_page(links, "Not found", problem, "Pick a model below.", known, "models",
                                    {m: links.model(m, None, None) for m in known}), 404
        return pages.error_page(links, error.name, error.description or error.name), error.code or 500

    @app.errorhandler(Exception)
    def failed(error: Exception) -> tuple[Any, int]:
        app.logger.exception("request failed")
        problem = f"{type(error).__name__}: {error}".splitlines()[0]
        if wants_json():
            return jsonify({"error": problem}), 500
        return pages.error_page(links, "This page could not be computed", problem), 500

    return app


def _locked_maps(name: str, size: int, framework: str, image: Any, label: str) -> dict[str, Any]:
    with compute.RUN_LOCK:
        return attention.compute_maps(name, size, framework, image, label)
