"Behaviour of medfound.lung.common: the LIDC database reader, contour-to-mask, grouping, shape, labels."
import sqlite3
import numpy as np
import pytest
from medfound.data import DataError, verify
from medfound.lung.common import (open_lidc, read_lidc, parse_coords, polygon_interior, pick_interior_count,
                                  shoelace_area, boundary_lattice_points, annotation_mask, slice_index,
                                  cluster_annotations, shape_features, reader_labels, simulated_pathology,
                                  render_ct, Scan, Annotation, Contour, lidc_sqlite_path)

def _have_lidc():
    try: return not verify("lidc_annotations")
    except Exception: return False

needs_lidc = pytest.mark.skipif(not _have_lidc(), reason="run: medfound data fetch lidc_annotations")

def test_missing_file_says_how_to_fetch(tmp_path):
    with pytest.raises(DataError, match="medfound data fetch lidc_annotations"): open_lidc(tmp_path / "none.sqlite")

def test_corrupt_file_is_refused(tmp_path):
    p = tmp_path / "junk.sqlite"; p.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 40)
    with pytest.raises(DataError, match="corrupt"): open_lidc(p)
    q = tmp_path / "text.sqlite"; q.write_text("not a database at all\n" * 200)
    with pytest.raises(DataError, match="corrupt"): open_lidc(q)

def test_other_sqlite_is_refused(tmp_path):
    p = tmp_path / "other.sqlite"
    con = sqlite3.connect(p); con.execute("CREATE TABLE scans (id INTEGER)"); con.commit(); con.close()
    with pytest.raises(DataError, match="not the LIDC annotation database"): open_lidc(p)

@needs_lidc
def test_truncated_database_is_refused(tmp_path):
    p = tmp_path / "cut.sqlite"; p.write_bytes(lidc_sqlite_path().read_bytes()[:9_000_000])
    with pytest.raises(DataError, match="corrupt"): open_lidc(p)

def test_malformed_coordinates():
    assert parse_coords("3,4\n5,6").tolist() == [[3, 4], [5, 6]]
    for bad in ("3;4", "", "1,2,3"):
        with pytest.raises(DataError, match="malformed"): parse_coords(bad)

@pytest.mark.parametrize("w,h", [(1, 1), (5, 4), (7, 2), (12, 9)])
def test_rectangle_interior_matches_pick_and_by_hand(w, h):
    poly = np.array([[0, 0], [w, 0], [w, h], [0, h]]) + 3
    m = polygon_interior(poly, (0, 0), (20, 20))
    assert m.sum() == (w - 1) * (h - 1) == pick_interior_count(poly)
    assert shoelace_area(poly) == w * h and len(boundary_lattice_points(poly)) == 2 * (w + h)

def test_random_convex_lattice_polygons_match_pick():
    rng = np.random.default_rng(0)
    for _ in range(30):
        ang = np.sort(rng.uniform(0, 2 * np.pi, 7)); rad = rng.uniform(4, 9)
        poly = np.unique(np.round(np.c_[rad * np.cos(ang), rad * np.sin(ang)]).astype(int) + 10, axis=0)
        c = poly.mean(0); poly = poly[np.argsort(np.arctan2(*(poly - c).T[::-1]))]     # convex, counter-clockwise
        if len(poly) < 3 or shoelace_area(poly) == 0: continue
        assert polygon_interior(poly, (0, 0), (25, 25)).sum() == pick_interior_count(poly)

def _toy_scan():
    sq = np.array([[10, 10], [16, 10], [16, 16], [10, 16]])
    a1 = Annotation(1, 0, {"malignancy": 4}, [Contour(2.0, True, sq), Contour(3.0, True, sq),
                                              Contour(3.0, False, np.array([[12, 12], [14, 12], [14, 14], [12, 14]]))])
    a2 = Annotation(2, 0, {"malignancy": 2}, [Contour(3.0, True, sq + 1)])
    a3 = Annotation(3, 0, {"malignancy": 1}, [Contour(9.0, True, sq + 60)])
    return Scan(0, "p", "u", 0.7, 1.0, np.arange(0.0, 12.0), [a1, a2, a3])

def test_annotation_mask_stacks_slices_and_cuts_holes():
    s = _toy_scan(); m, corner = annotation_mask(s.annotations[0], s)
    assert corner == (2, 10, 10) and m.shape == (2, 7, 7)
    assert m[0].sum() == 25 and m[1].sum() == 25 - 9       # 5x5 interior; the hole removes its 3x3 closure
    with pytest.raises(DataError, match="matches no slice"): slice_index(s, 40.0)

def test_grouping_links_overlapping_outlines_only():
    groups = cluster_annotations(_toy_scan())
    assert sorted(sorted(a.id for a in g) for g in groups) == [[1, 2], [3]]

def test_shape_features_of_a_ball():
    g = np.indices((32, 32, 32)) - 15.5
    ball = np.clip(8.5 - np.sqrt((g ** 2).sum(0)), 0, 1).astype(np.float32)
    f = shape_features(ball)
    assert abs(f["diameter"] - 16) < 0.2 and f["sphericity"] > 0.98 and f["solidity"] > 0.99
    assert shape_features(np.zeros((8, 8, 8), np.float32))["volume"] == 0

def test_reader_rules():
    s = np.array([[1, 2, np.nan], [3, 3, np.nan], [3, 4, 5], [2, 4, np.nan]])
    np.testing.assert_array_equal(reader_labels(s, "median"), [0, np.nan, 1, np.nan])
    np.testing.assert_array_equal(reader_labels(s, "mean"), [0, np.nan, 1, np.nan])
    np.testing.assert_array_equal(reader_labels(s, "max"), [0, np.nan, 1, 1])
    np.testing.assert_array_equal(reader_labels(s, "any"), [0, 0, 1, 1])
    with pytest.raises(ValueError, match="unknown rule"): reader_labels(s, "mode")

def test_simulated_pathology_follows_its_model():
    d = np.linspace(3, 30, 50); so = np.full(50, 0.9); sp = np.full(50, 0.8)
    y, s = simulated_pathology(d, so, sp, ids=np.arange(50), model=dict(log_diameter=1, irregularity=0.8, asphericity=0.4,
                                                                        noise=0.0, prevalence=0.4))
    assert y.sum() == 20 and (y[-20:] == 1).all()
    with pytest.raises(ValueError, match="finite"): simulated_pathology([np.nan], [1], [1], [0])

def test_render_ct_levels():
    g = np.indices((32, 32)) - 15.5
    disc = np.clip(8.5 - np.sqrt((g ** 2).sum(0)), 0, 1)
    img = render_ct(disc, texture=5, calcified=False, rng=np.random.default_rng(0), n_vessels=0)
    assert abs(img[14:18, 14:18].mean() - 40) < 40 and abs(img[:3, :3].mean() + 860) < 60

@needs_lidc
def test_real_database_counts_and_first_scans():
    con = open_lidc()
    assert con.execute("SELECT COUNT(*) FROM annotations").fetchone()[0] == 6859; con.close()
    scans = read_lidc(max_scans=3)
    assert len(scans) == 3 and all(s.annotations for s in scans)
    for s in scans:
        groups = cluster_annotations(s)
        assert sum(map(len, groups)) == len(s.annotations)
        for a in s.annotations:
            m, _ = annotation_mask(a, s)
            inc = [c for c in a.contours if c.inclusion]
            if len(inc) == len(a.contours) and len({c.z for c in inc}) == len(inc):
                pick = sum(pick_interior_count(c.xy) for c in inc)      # exact for simple outlines
                assert abs(m.sum() - pick) <= 0.01 * pick + 1
