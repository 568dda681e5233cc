import numpy as np
import numpy.typing as npt

def match_sorted(
    cur: npt.NDArray[np.uint64], base: npt.NDArray[np.uint64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]: ...
def changed_components(
    cur_vals: npt.NDArray[np.uint32],
    base_vals: npt.NDArray[np.uint32],
    cur_pres: npt.NDArray[np.uint8],
    base_pres: npt.NDArray[np.uint8],
    cur_to_base: npt.NDArray[np.int64],
    lane_comp: npt.NDArray[np.int32],
    lane_bits: npt.NDArray[np.uint8],
) -> tuple[
    npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.float32], npt.NDArray[np.uint8]
]: ...
def lane_deltas(
    cur_vals: npt.NDArray[np.uint32],
    base_vals: npt.NDArray[np.uint32],
    cur_rows: npt.NDArray[np.int64],
    base_rows: npt.NDArray[np.int64],
    lane: int,
    bits: int,
) -> npt.NDArray[np.uint32]: ...
def apply_lane_deltas(
    out_vals: npt.NDArray[np.uint32],
    rows: npt.NDArray[np.int64],
    lane: int,
    deltas: npt.NDArray[np.uint32],
    bits: int,
) -> None: ...
