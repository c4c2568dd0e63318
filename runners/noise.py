"""Known noise of the model stack, silenced before it is imported: in the CLI's process and in the
fresh processes the runner starts (they call ``quiet_model_stack`` first thing, and inherit the
environment set here). Errors are never filtered; ``quantgate -v`` keeps everything. Pure Python."""

from __future__ import annotations

import os

#: (message regex, category) of warnings the model stack emits on import that say nothing about the run.
NOISY_WARNINGS = (
    (r"`torch\.utils\._pytree\.", FutureWarning),
    (r".*_pytree.* is deprecated", FutureWarning),
    (r".*_pytree.* is deprecated", DeprecationWarning),
    (r".*_pytree.* is deprecated", UserWarning),
)
#: logger -> message prefixes: optional native kernels a library could not load (torchao's
#: ``_C_mxfp8`` on a run that uses ONNX Runtime). A backend that needs them fails loudly on its own.
NOISY_LOGS = {
    "torchao": ("Failed to load ", "Skipping import of cpp extensions"),
    # torchao registers its enums with torch.compile through a path torch now deprecates (a warning log line per enum)
    "torch.utils._pytree": ("<enum ",),
}


class _DropPrefixes:
    def __init__(self, prefixes: tuple[str, ...]):
        self.prefixes = prefixes

    def filter(self, record) -> bool:
        import logging

        if record.levelno >= logging.ERROR:
            return True  # never silence a real error
        return not str(record.msg).startswith(self.prefixes)


def quiet_model_stack(verbose: int = 0) -> None:
    """Filter the known import-time noise of the model stack, before it is imported (this process and,
    through ``PYTHONWARNINGS``, the fresh processes the runner starts to reload artifacts). Errors are
    never filtered; ``-v`` keeps everything."""
    if verbose:
        os.environ["QUANTGATE_VERBOSE"] = str(verbose)  # the fresh processes keep everything too
        return
    import logging
    import warnings

    for message, category in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name, prefixes in NOISY_LOGS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropPrefixes) for f in logger.filters):
            logger.addFilter(_DropPrefixes(prefixes))
    inherited = "ignore:`torch.utils._pytree._register_pytree_node` is deprecated:FutureWarning"
    current = os.environ.get("PYTHONWARNINGS", "")
    if inherited not in current:
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [current, inherited]))
    # Progress bars of libraries (GGUF conversion, weight loading) flood CI logs; quantgate prints its own.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TQDM_DISABLE", "1")
