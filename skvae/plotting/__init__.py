"""Displays for latent spaces, decoded manifolds and reconstructions.

They follow scikit-learn's Display pattern: ``__init__`` stores the computed
data, ``plot(ax=None)`` draws it and stores ``ax_`` (or ``axes_``) and
``figure_``, and ``from_estimator(...)`` computes and plots in one call.
Matplotlib is imported only when something is drawn.
"""

from ._latent import LatentSpaceDisplay
from ._manifold import ManifoldGridDisplay
from ._reconstruction import ReconstructionDisplay

__all__ = ["LatentSpaceDisplay", "ManifoldGridDisplay", "ReconstructionDisplay"]
