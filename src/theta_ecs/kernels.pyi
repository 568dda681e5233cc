from typing import Any

import numpy as np
import numpy.typing as npt

def integrate(
    target: npt.NDArray[Any], rate: npt.NDArray[Any], dt: float | np.floating[Any]
) -> None: ...
def integrate_scaled(
    target: npt.NDArray[Any],
    rate: npt.NDArray[Any],
    scale: npt.NDArray[Any],
    dt: float | np.floating[Any],
) -> None: ...
