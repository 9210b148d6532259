"""Sizes gradq refuses to go past, so hostile or mistaken input fails in one line, not in swap.

Each is far above any sensible use: MNIST has 70,000 images; its usual networks have under a
million parameters.
"""

from itertools import pairwise

MAX_IMAGES = 1_000_000  # images (or labels) in one IDX file, one .npz array or one CSV
MAX_ARRAY_BYTES = 1 << 30  # uncompressed bytes of one .npz array (x as float64: 170k images)
MAX_LINE_BYTES = 64 << 10  # one CSV line; a row of 785 numbers is under 4 KiB
MAX_LAYERS = 8  # hidden layers
MAX_PARAMS = 16_000_000  # weights and biases of a network: 64 MB float32, 128 MB float64
MAX_META_CHARS = 4096  # a snapshot's JSON metadata (about 200 characters in practice)


def parameter_count(sizes: list[int]) -> int:
    """Weights and biases of dense layers of these sizes, input to output."""
    return sum(n_in * n_out + n_out for n_in, n_out in pairwise(sizes))


def network_problem(hidden: tuple[int, ...], n_in: int = 784, n_out: int = 10) -> str | None:
    """Say why a network is too big to train or store here, or None when it fits."""
    if len(hidden) > MAX_LAYERS:
        return f"{len(hidden)} hidden layers is too many (at most {MAX_LAYERS})"
    count = parameter_count([n_in, *hidden, n_out])
    if count > MAX_PARAMS:
        return (
            f"{','.join(map(str, hidden))} makes {count:,} parameters; the limit is "
            f"{MAX_PARAMS:,} (e.g. 4096 or 2048,2048 fit)"
        )
    return None
