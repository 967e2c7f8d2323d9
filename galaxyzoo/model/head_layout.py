"""The Dirichlet head's output columns: one Dirichlet per question (37), or a mixture of K (K * 48).

```python
mixture_width(2)      # 96: 2 x 37 concentrations, then 2 x 11 question weights
n_components(96)      # 2; n_components(37) is 1
```

Schema only, no NumPy or Keras: the network, its loss and `model.dirichlet` all read the layout here.
"""

from __future__ import annotations

from galaxyzoo import schema

# One component's columns: its concentrations, and its weight in each question.
MIXTURE_STRIDE = schema.N_ANSWERS + len(schema.QUESTIONS)


def n_components(width: int) -> int:
    """The number of Dirichlets per question in a head's output of `width` columns: 1 for 37, K for K * 48.

    Raises ValueError for any other width.
    """
    if width == schema.N_ANSWERS:
        return 1
    k, rest = divmod(width, MIXTURE_STRIDE)
    if rest or k < 2:
        raise ValueError(f"a Dirichlet head outputs {schema.N_ANSWERS} concentrations or K * {MIXTURE_STRIDE} "
                         f"columns for a mixture of K >= 2, got {width} columns")
    return k


def mixture_width(components: int) -> int:
    """The output width of a head of `components` Dirichlets per question (`n_components`' inverse)."""
    return schema.N_ANSWERS if components == 1 else components * MIXTURE_STRIDE
