"""Stage 6: energy models (torch / Lightning). Only this layer and the CLI import torch.

The nets here are small (a few hundred weights) and are applied to many clusters at once;
torch's intra-op threads do not speed them up but do fight the kernels' threads (and any
other process) for the cores — measured on the project's 2-core machine under load: 7 ms per
training step with one torch thread, 750 ms with two.  :func:`torch_threads` sets one thread
unless ``CCDGEN_TORCH_THREADS`` says otherwise; training and prediction call it.
"""

from __future__ import annotations

import os


def torch_threads() -> int:
    """Set (and return) the number of torch intra-op threads: ``$CCDGEN_TORCH_THREADS`` or 1."""
    import torch

    n = int(os.environ.get("CCDGEN_TORCH_THREADS", "1") or 1)
    if torch.get_num_threads() != n:
        torch.set_num_threads(max(1, n))
    return n


def load_model(path):
    """See :func:`ccdgen.models.checkpoint.load_model`."""
    from .checkpoint import load_model as _load

    return _load(path)
