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
    base_lane: int = -1,
) -> npt.NDArray[np.uint32]: ...
def predict_positions(
    base_vals: npt.NDArray[np.uint32],
    base_rows: npt.NDArray[np.int64],
    base_has_vel: npt.NDArray[np.uint8],
    cur_vals: npt.NDArray[np.uint32],
    cur_rows: npt.NDArray[np.int64],
    cur_has_vel: npt.NDArray[np.uint8],
    p_lanes: npt.NDArray[np.int64],
    p_min: npt.NDArray[np.float64],
    p_step: npt.NDArray[np.float64],
    p_max: npt.NDArray[np.float64],
    p_scale: npt.NDArray[np.float64],
    v_lanes: npt.NDArray[np.int64],
    v_min: npt.NDArray[np.float64],
    v_step: npt.NDArray[np.float64],
    factor: float,
) -> npt.NDArray[np.uint32]: ...
def apply_lane_deltas(
    out_vals: npt.NDArray[np.uint32],
    rows: npt.NDArray[np.int64],
    lane: int,
    deltas: npt.NDArray[np.uint32],
    bits: int,
) -> None: ...
