"Hand-made airway shapes shared by the airway chapters' tests: voxel tubes and a three-branch tree."
import numpy as np


def tube(shape, p0, p1, r):
    "Boolean volume of the voxels within `r` of the segment p0-p1 (voxel coordinates)."
    g = np.indices(shape).reshape(3, -1).T.astype(float); p0, p1 = np.array(p0, float), np.array(p1, float)
    v = p1 - p0; t = np.clip((g - p0) @ v / (v @ v), 0, 1)
    return (np.linalg.norm(g - (p0 + t[:, None] * v), axis=1) <= r).reshape(shape)


# a trachea-like trunk that forks into two branches, radius 2, in a 40 x 40 x 20 volume
TREE_SHAPE = (40, 40, 20)
TREE = (tube(TREE_SHAPE, (2, 20, 10), (18, 20, 10), 2) | tube(TREE_SHAPE, (18, 20, 10), (36, 6, 10), 2)
        | tube(TREE_SHAPE, (18, 20, 10), (36, 34, 10), 2))
