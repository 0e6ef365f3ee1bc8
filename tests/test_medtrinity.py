"Behaviour of the MedTrinity pipeline pieces: knowledge base, expert segmenter, retrieval, text, VQA scoring."
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medfound.vl.medtrinity import (LOBES, QUESTIONS, ROI, KnowledgeBase, answer_index, describe, dice,
                                    expert_segment, load_brain, make_lesion_slice, retrieve, size_class, zero_shot_vqa)


@pytest.fixture(scope="module")
def brain():
    t1, aal, names = load_brain()
    return t1, aal, KnowledgeBase(names)


def test_every_aal_label_is_parsed(brain):
    _, aal, kb = brain
    assert len(kb) == 116
    for lab, r in kb.regions.items():
        assert r.lobe in LOBES and r.hemisphere in ("left", "right", "midline") and r.fact
        assert r.aal.endswith("_L") == (r.hemisphere == "left") and r.aal.endswith("_R") == (r.hemisphere == "right")
    assert kb[93].name.startswith("left cerebellar hemisphere lobule")   # Cerebelum_Crus2_L: the lobule is kept


def test_unknown_aal_name_is_rejected():
    with pytest.raises(KeyError, match="Foo_L"):
        KnowledgeBase({1: "Foo_L"})


def test_size_classes():
    assert [size_class(d) for d in (5, 11.9, 12, 20.9, 21, 30)] == ["small", "small", "medium", "medium", "large", "large"]


def test_expert_finds_lesions_and_ignores_healthy_tissue(brain):
    t1, aal, kb = brain
    rng = np.random.default_rng(3)
    scores = []
    for _ in range(20):
        s = make_lesion_slice(t1, aal, kb, rng)
        rois = expert_segment(s.image)
        scores.append(dice(rois[0].mask, s.mask) if rois else 0.0)
        assert len(rois) <= 2          # no spray of false positives
    assert np.mean(scores) > 0.7


def test_retrieval_and_text_follow_the_roi(brain):
    _, _, kb = brain
    atlas = np.zeros((180, 180), np.int16); atlas[40:80, 100:140] = 2          # right precentral
    brain_mask = np.zeros((180, 180), bool); brain_mask[10:170, 10:170] = True
    m = np.zeros((180, 180), bool); m[50:70, 110:130] = True
    k = retrieve(ROI(m, (50, 110, 70, 130), int(m.sum())), atlas, brain_mask, kb)
    assert k["main"].name == "right precentral gyrus" and k["hemisphere"] == "right" and k["size"] == "large"
    t = describe(30, 1, k)
    assert "right precentral gyrus" in t["roi"] and "frontal lobe" in t["roi"] and "right hemisphere" in t["relations"]


def test_zero_shot_vqa_scores_against_truth():
    e = F.normalize(torch.eye(3), dim=-1)
    enc = lambda texts: torch.stack([e[["small", "medium", "large"].index(t.split()[1])] for t in texts])
    truth = [dict(size="large"), dict(size="small")]
    assert zero_shot_vqa(e[[2, 0]], enc, truth, {"size": QUESTIONS["size"]})["size"] == 1.0
    assert zero_shot_vqa(e[[0, 2]], enc, truth, {"size": QUESTIONS["size"]})["size"] == 0.0
    assert answer_index(truth, "size").tolist() == [2, 0]


def test_multi_positive_loss_reduces_to_clip_and_splits_duplicates():
    from medfound.vl.medtrinity import multi_positive_clip_loss
    from medfound.vl.common import clip_loss
    g = torch.Generator().manual_seed(1)
    u, v = F.normalize(torch.randn(5, 4, generator=g), dim=-1), F.normalize(torch.randn(5, 4, generator=g), dim=-1)
    ids = torch.arange(1, 6)[:, None].repeat(1, 3)
    assert torch.allclose(multi_positive_clip_loss(u, v, 7.0, ids), clip_loss(u, v, 7.0), atol=1e-6)
    ids[3] = ids[2]
    q = torch.eye(5); q[2, 2:4] = q[3, 2:4] = 0.5
    ref = 0.5 * (F.cross_entropy(7.0 * u @ v.T, q) + F.cross_entropy(7.0 * v @ u.T, q))
    assert torch.allclose(multi_positive_clip_loss(u, v, 7.0, ids), ref, atol=1e-6)


def test_mni152_is_a_second_brain_on_colins_grid(brain):
    from medfound.vl.medtrinity import axial_slice, load_mni152
    t1, aal, kb = brain
    mni = load_mni152(t1)
    assert mni.shape == t1.shape and mni.dtype == np.float32
    a, b = t1 > 0, mni > 0
    overlap = 2 * (a & b).sum() / (a.sum() + b.sum())
    assert 0.9 < overlap < 0.99                        # same space and orientation, another head
    assert np.isclose(np.percentile(mni[b], 90), np.percentile(t1[a], 90), rtol=1e-3)
    assert expert_segment(axial_slice(mni, 90)) == []   # healthy slice of the average brain: no ROI
    s = make_lesion_slice(mni, aal, kb, np.random.default_rng(0))
    rois = expert_segment(s.image)
    assert rois and dice(rois[0].mask, s.mask) > 0.6


def test_noisy_expert_misses_moves_and_is_exact_without_noise(brain):
    from medfound.vl.medtrinity import noisy_expert
    t1, aal, kb = brain
    s = make_lesion_slice(t1, aal, kb, np.random.default_rng(3))
    clean = expert_segment(s.image)
    rng = np.random.default_rng(0)
    assert noisy_expert(s.image, rng, miss=1.0) == []
    exact = noisy_expert(s.image, rng, miss=0.0, shift=0, grow=0)[0]
    assert np.array_equal(exact.mask, clean[0].mask) and exact.area == clean[0].area
    moved = [noisy_expert(s.image, rng, miss=0.0, shift=12, grow=0) for _ in range(30)]
    d = [dice(r[0].mask, clean[0].mask) for r in moved if r]
    assert np.mean(d) < 0.8 and all(r[0].mask.sum() == r[0].area for r in moved if r)
    assert all(not (r[0].mask & ~(s.image > 0)).any() for r in moved if r)   # clipped to the brain


def test_triplets_from_two_brains_and_a_noisy_expert(brain):
    from medfound.vl.medtrinity import build_triplets, load_mni152
    t1, aal, kb = brain
    mni = load_mni152(t1)
    clean = build_triplets(16, 7, [t1, mni], aal, kb)
    assert {t["brain"] for t in clean.truth} == {0, 1}
    assert build_triplets(4, 7, t1, aal, kb).texts == build_triplets(4, 7, [t1], aal, kb).texts
    noisy = build_triplets(16, 7, [t1, mni], aal, kb, expert_noise=dict(miss=0.5, shift=12, grow=3))
    assert np.array_equal(noisy.images, clean.images) and noisy.truth == clean.truth
    assert noisy.texts != clean.texts and noisy.dice.mean() < clean.dice.mean()
