"""Sphinx configuration for skvae's documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
Nothing here reaches the network: intersphinx has no mapping and the gallery
links only to skvae's own API.
"""

import os
import re

import matplotlib
import torch

matplotlib.use("Agg")  # the gallery renders without a display

# The gallery's networks are small: one thread per process trains them as fast
# as several, and does not fight other processes for a small machine's cores
# (PyTorch's waiting threads spin, which slows an oversubscribed machine ~10x).
# GridSearchCV's workers get one thread each from joblib anyway.
torch.set_num_threads(1)

import skvae  # noqa: E402

project = "skvae"
author = "skvae developers"
copyright = "skvae developers"
version = release = skvae.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"
default_role = "literal"  # `x` in docstrings renders as code, not a broken ref

# -- autodoc / autosummary -----------------------------------------------------

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
autodoc_typehints = "none"  # numpydoc sections carry the types

# -- numpydoc ------------------------------------------------------------------

numpydoc_show_class_members = False  # the class template lists the methods
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# Check our docstrings' structure; skip the rules the project does not follow
# (an extended summary and a See Also / Examples section on every method).
numpydoc_validation_checks = {"all", "ES01", "SA01", "EX01", "GL08", "RT02"}
# Methods inherited from scikit-learn's mixins are documented by scikit-learn,
# in its own conventions: do not hold them to ours.
numpydoc_validation_exclude = {
    r"\.fit_transform$",
    r"\.get_feature_names_out$",
    r"\.get_metadata_routing$",
    r"\.get_params$",
    r"\.set_output$",
    r"\.set_params$",
    r"\.set_partial_fit_request$",
    r"\.set_fit_request$",
    r"\.set_transform_request$",
    r"\.set_inverse_transform_request$",
    r"\.set_score_request$",
    r"\.__init__$",
}

# -- intersphinx: no network, so no mapping --------------------------------------

intersphinx_mapping = {}
intersphinx_disabled_reftypes = ["*"]

# -- sphinx-gallery ------------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "/plot_",  # execute every example
    "ignore_pattern": r"__init__\.py",
    "doc_module": ("skvae",),
    "backreferences_dir": os.path.join("gen_modules", "backreferences"),
    "reference_url": {"skvae": None},  # link to our own API only: no downloads
    "matplotlib_animations": False,
    "remove_config_comments": True,
    "show_memory": False,
    "plot_gallery": "True",
    "abort_on_example_error": False,
}

# -- HTML ----------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"skvae {release}"
html_static_path = ["_static"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_prev_next": False,
    "use_edit_page_button": False,
    "navbar_end": ["theme-switcher", "navbar-icon-links"],
}
html_show_sourcelink = False


# -- docstrings inherited from scikit-learn ------------------------------------

# Methods such as ``set_output`` come from scikit-learn's mixins, and their
# docstrings cross-reference labels of scikit-learn's own documentation, which
# this build does not have (and, offline, cannot link to). Keep the words of
# such references and drop the link; every other reference is still checked.
_SKLEARN_REF = re.compile(r":ref:`(?:([^`<]*?)\s*<[^`>]+>|([^`<]+))`")


def _unlink_sklearn_refs(app, what, name, obj, options, lines):
    module = getattr(obj, "__module__", None) or ""
    if not module.startswith("sklearn"):
        return
    for i, line in enumerate(lines):
        lines[i] = _SKLEARN_REF.sub(lambda m: m.group(1) or m.group(2), line)


def setup(app):
    app.connect("autodoc-process-docstring", _unlink_sklearn_refs)
