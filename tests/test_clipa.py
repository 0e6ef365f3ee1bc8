"Behaviour of the CLIPA token reductions: exact token counts, equal FLOPs, and clear errors."
import pytest
import torch
from medfound.vl.clipa import (mask_indices, reduce_image, reduce_text, tag_english, TinyViT, ClipaModel, clipa_loss,
                               step_flops, NOUN, ADJ, VERB, OTHER, IMAGE_STRATEGIES, TEXT_STRATEGIES)

def test_masks_are_distinct_and_sized():
    g = torch.Generator().manual_seed(1)
    for s in ("random", "grid", "block"):
        for K in (4, 16):
            idx = mask_indices(s, 7, 8, K, g)
            assert idx.shape == (7, K) and all(len(set(r.tolist())) == K for r in idx)
            assert (idx.diff(dim=1) > 0).all()

def test_same_generator_same_masks():
    a = mask_indices("random", 3, 8, 16, torch.Generator().manual_seed(5))
    b = mask_indices("random", 3, 8, 16, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)

@pytest.mark.parametrize("args", [("grid", 8, 12), ("block", 8, 8), ("random", 8, 0), ("nope", 8, 4)])
def test_bad_masks_raise(args):
    with pytest.raises(ValueError):
        mask_indices(args[0], 2, args[1], args[2])

def test_vit_ignores_token_order():
    "Positions travel with their patches, so any order of the kept tokens gives the same embedding."
    torch.manual_seed(0)
    vit = TinyViT(16, 1, 1)
    x = torch.randn(2, 3, 32, 32)
    keep = mask_indices("random", 2, 8, 16, torch.Generator().manual_seed(0))
    shuffled = keep[:, torch.randperm(16)]
    assert torch.allclose(vit(x, keep), vit(x, shuffled), atol=1e-5)
    assert not torch.allclose(vit(x, keep), vit(x, mask_indices("block", 2, 8, 16)), atol=1e-3)

def test_text_reductions_keep_tag_and_order():
    ids = torch.tensor([[2, 5, 6, 7, 8, 9, 10, 0]])
    prio = torch.tensor([[-1, OTHER, VERB, NOUN, ADJ, NOUN, OTHER, 9]])
    for s in TEXT_STRATEGIES:
        k, p = reduce_text(ids, prio, s, 4, torch.Generator().manual_seed(0))
        assert k.shape == (1, 4) and k[0, 0] == 2 and (p[0].diff() > 0).all()
        assert set(k[0].tolist()) <= set(ids[0].tolist())
    assert reduce_text(ids, prio, "syntax", 4)[0].tolist() == [[2, 7, 8, 9]]
    with pytest.raises(ValueError):
        reduce_text(ids, prio, "shuffle", 4)

def test_english_tagger_classes():
    assert [c for _, c in tag_english("A small dog eating bones.")] == [OTHER, ADJ, NOUN, VERB, NOUN, OTHER]

def test_equal_flops_across_image_strategies():
    torch.manual_seed(0)
    m = ClipaModel(40, 16, 1)
    batch = (torch.randn(4, 3, 32, 32), torch.randint(1, 40, (4, 16)), torch.randint(0, 4, (4, 16)))
    f = [step_flops(m, lambda mm, b, s=s: clipa_loss(mm, b, (s, 16)), batch) for s in IMAGE_STRATEGIES]
    assert len(set(f)) == 1 and f[0] < step_flops(m, clipa_loss, batch)
