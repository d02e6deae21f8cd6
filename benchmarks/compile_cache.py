"""Persistent compilation caches (`--compile-cache DIR`): JAX's and torch inductor's, in one folder.

Set through environment variables before either framework compiles anything, so the same
settings reach subprocesses (isolated runs, shards). A record says whether its compile
found the cache warm: JAX wrote no new cache entry for a program it compiled.
"""

from __future__ import annotations

import os
from pathlib import Path

JAX_SUBDIR = "jax"
INDUCTOR_SUBDIR = "inductor"


def enable_compile_caches(folder: str | os.PathLike) -> Path:
    """Point JAX's persistent cache and torch inductor's caches at `folder`; returns it, created."""
    root = Path(folder).expanduser().resolve()
    (root / JAX_SUBDIR).mkdir(parents=True, exist_ok=True)
    (root / INDUCTOR_SUBDIR).mkdir(parents=True, exist_ok=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(root / JAX_SUBDIR)
    # Cache every program, however quick to compile (JAX's default skips those under 1 s).
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(root / INDUCTOR_SUBDIR)
    os.environ["TORCHINDUCTOR_FX_GRAPH_CACHE"] = "1"
    try:  # JAX may already be imported (its config read the environment then)
        import sys

        if "jax" in sys.modules:
            import jax

            jax.config.update("jax_compilation_cache_dir", str(root / JAX_SUBDIR))
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
            jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    except Exception:  # an older JAX without one of these options: the environment still applies
        pass
    return root


def jax_cache_dir() -> Path | None:
    """The JAX persistent cache folder in use, or None."""
    folder = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    return Path(folder) if folder else None


def cache_entries(folder: Path | None) -> int:
    """How many files the cache folder holds (0 without one)."""
    if folder is None or not folder.is_dir():
        return 0
    return sum(1 for p in folder.rglob("*") if p.is_file())
