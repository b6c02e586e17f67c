"""The private scikit-learn names skvae uses, imported in this one place.

scikit-learn does not promise to keep these where they are: when a release
moves one, this is the only file to change.
"""

from sklearn.base import _fit_context as fit_context
from sklearn.utils._param_validation import (
    Interval,
    Options,
    StrOptions,
    validate_params,
)

__all__ = ["Interval", "Options", "StrOptions", "fit_context", "validate_params"]
